-- The example from Coronium's Job Service page: work only on Fridays at 1 AM (UTC). On
-- Coronium the job ran every minute and checked the time itself; in jobtop its schedule
-- (`schedule: "0 1 * * FRI"` in jobs.yaml) fires only then, and the check below, kept as the
-- page has it, always passes. `jobtop try jobs/friday_report.lua --at 2024-05-03T01:00:00Z`
-- shows the work being done.
local job = core.job()

function job.run()

  if job.day() == "Fri" and job.hour() == 1 then
    core.log("Do some work")
  end

  return job.DONE

end

return job
