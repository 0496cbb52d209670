-- Checks how full the root filesystem is with `df` (needs `allow: [exec]`).
local job = core.job()

local WARN_AT = 90 -- percent

function job.run()
  local result, err = core.exec("df", { "-P", "/" }, { timeout = 5 })
  if not result then
    error("df did not run: " .. err)
  end
  if result.status ~= 0 then
    error("df failed with status " .. result.status .. ": " .. core.trim(result.stderr))
  end
  -- The second line of `df -P`: filesystem, blocks, used, available, capacity, mount point.
  local lines = core.split(core.trim(result.stdout), "\n")
  local fields = {}
  for field in string.gmatch(lines[2] or "", "%S+") do
    fields[#fields + 1] = field
  end
  local used = tonumber((fields[5] or ""):match("(%d+)%%"))
  if not used then
    error("unexpected df output: " .. result.stdout)
  end
  if used >= WARN_AT then
    core.log(core.sf("WARNING: / is %d%% full", used))
  else
    core.log(core.sf("/ is %d%% full", used))
  end
  return job.OK
end

return job
