local job = core.job() function job.run() return job.OK end return job
