-- Fails during odd minutes, as a remote API sometimes does. A failure first puts the job in
-- `retrying` (jobs.yaml gives it one retry, 10 s later); when the retry fails too, the job is
-- deactivated and keeps the error: press `a` in the dashboard (or `jobtop activate flaky-api`)
-- to bring it back.
local job = core.job()

local function fetch_status()
  if job.minute() % 2 == 1 then
    error("upstream API answered 503 Service Unavailable")
  end
  return "200 OK"
end

function job.run()
  core.log("upstream says " .. fetch_status())
  return job.OK
end

return job
