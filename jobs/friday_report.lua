-- The example from Coronium's Job Service page: work only on Fridays at 1 AM (UTC).
local job = core.job()

function job.run()

  if job.day() == "Fri" and job.hour() == 1 then
    core.log("Do some work")
  end

  return job.DONE

end

return job
