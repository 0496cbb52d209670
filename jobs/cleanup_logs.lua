-- Removes files older than a week from a log directory (needs `allow: [files]` and the
-- directory among the job's `files:` roots).
local job = core.job()

local DIR = "/tmp/jobtop-demo-logs"
local MAX_AGE = 7 * 24 * 3600 -- seconds

function job.run()
  if not core.files.exists(DIR) then
    core.log(DIR .. " does not exist: nothing to clean")
    return job.OK
  end
  local names, err = core.files.list(DIR)
  if not names then
    error(err)
  end
  local now, removed = os.time(), 0
  for _, name in ipairs(names) do
    local path = DIR .. "/" .. name
    local info = core.files.stat(path)
    if info and info.kind == "file" and now - info.modified > MAX_AGE then
      local ok, why = core.files.remove(path)
      if ok then
        removed = removed + 1
      else
        core.log("could not remove " .. path .. ": " .. why)
      end
    end
  end
  core.log(core.sf("removed %d of %d files", removed, #names))
  return job.OK
end

return job
