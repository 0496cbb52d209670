-- Returns job.EXIT: the job stops (status "stopped") until the service is reloaded or
-- restarted, without being deactivated.
local job = core.job()

function job.run()
  core.log("maintenance window open: pausing until the next reload")
  return job.EXIT
end

return job
