-- Calls a health-check URL (needs `allow: [network]`). After three failures in a row it
-- cancels itself (job.CANCEL), so a dead service does not fill the history with errors; the
-- count survives restarts in core.state. Activate the job again once the service is back.
local job = core.job()

local URL = "http://127.0.0.1:8080/health"
local GIVE_UP_AFTER = 3

function job.run()
  local response, err = core.network.get(URL)
  if response and response.status == 200 then
    core.state.set("failures", 0)
    core.log("healthy")
    return job.OK
  end
  local failures = (core.state.get("failures") or 0) + 1
  core.state.set("failures", failures)
  core.log(core.sf("unhealthy (%d in a row): %s", failures,
    response and ("status " .. response.status) or err))
  if failures >= GIVE_UP_AFTER then
    core.state.set("failures", 0)
    core.log("giving up: cancelling this job until an operator activates it")
    return job.CANCEL
  end
  return job.OK
end

return job
