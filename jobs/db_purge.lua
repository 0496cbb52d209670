-- Purges rows older than 30 days from a table, in one transaction, and says how many went.
--
-- To point it at a database: define it in service.databases of jobs.yaml (the shipped file
-- has `app`, an SQLite file beside jobs.yaml), for example
--     app: {url: "postgres://jobs@db1.internal/app?sslmode=require", password_env: APP_DB_PASSWORD}
-- with the password in jobtop serve's environment (never in jobs.yaml), keep `allow: [db]`
-- and `databases: [app]` in the job's entry, set TABLE and COLUMN below, and set
-- `active: true`. PostgreSQL writes its placeholders $1, $2; MySQL and SQLite write `?`.
local job = core.job()

local DB = "app"
local TABLE = "events"      -- a plain table name: it is put into the SQL as it is
local COLUMN = "created_at" -- a DATETIME/TIMESTAMP column (or ISO text, for SQLite)
local MAX_AGE_DAYS = 30
local PLACEHOLDER = "?"     -- "$1" for PostgreSQL

function job.run()
  local cutoff = core.mysql.timestamp(os.time() - MAX_AGE_DAYS * 24 * 3600)
  local where = core.sf("%s < %s", COLUMN, PLACEHOLDER)
  local purged, err = core.sql.transaction(DB, function(tx)
    local old, why = tx:query(core.sf("SELECT COUNT(*) AS n FROM %s WHERE %s", TABLE, where), cutoff)
    if not old then
      return nil, why
    end
    local done, failed = tx:exec(core.sf("DELETE FROM %s WHERE %s", TABLE, where), cutoff)
    if not done then
      return nil, failed
    end
    if done.affected ~= old[1].n then
      return nil, core.sf("counted %d old rows but deleted %d: rolled back", old[1].n, done.affected)
    end
    return done.affected
  end)
  if not purged then
    -- A missing table or an unreachable server: say so, and try again next time.
    core.log("purge failed: " .. err)
    return job.OK
  end
  core.log(core.sf("purged %d rows of %s older than %s", purged, TABLE, cutoff))
  return job.OK
end

return job
