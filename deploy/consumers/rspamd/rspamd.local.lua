-- rspamd: /etc/rspamd/rspamd.local.lua -- blowback in "safe mode".
--
-- The list is asked only for mail whose SMTP envelope sender is null (<>)
-- or postmaster@ (bounces and callouts): backscatter lists are meant for
-- those, not for all mail of a listed server. Only the listing codes
-- 127.0.0.2-5 count; any other answer (127.255.255.x when the list refuses
-- the query through a public resolver or over quota) is no listing: it
-- adds RBL_BLOWBACK_REFUSED (score 0) so that you see it.
--
-- A rule of its own rather than an rbl module rule: the rbl module's
-- require_symbols never passes in rspamd 3.4 (Debian 12), so a safe-mode
-- rbl rule is never asked there (found by cmd/blowback TestRspamdLive).
-- Replace bl.blowback.test with the zone you use; scores in groups.conf.
local rspamd_logger = require 'rspamd_logger'

local zone = 'bl.blowback.test'
local codes = {
  ['127.0.0.2'] = 'RBL_BLOWBACK_BOUNCE',
  ['127.0.0.3'] = 'RBL_BLOWBACK_AUTOREPLY',
  ['127.0.0.4'] = 'RBL_BLOWBACK_CALLOUT',
  ['127.0.0.5'] = 'RBL_BLOWBACK_CHALLENGE',
}

-- true when the SMTP envelope sender is null (<>) or postmaster@.
local function safe_sender(task)
  local from = task:get_from('smtp')
  if not from or not from[1] or (from[1].addr or '') == '' then
    return true
  end
  return string.lower(from[1].user or '') == 'postmaster'
end

rspamd_config:register_symbol({
  name = 'BLOWBACK_SAFE_SENDER',
  score = 0.0,
  group = 'blowback',
  description = 'Null or postmaster envelope sender (blowback safe mode)',
  callback = safe_sender,
})

local id = rspamd_config:register_symbol({
  name = 'RBL_BLOWBACK',
  type = 'callback',
  score = 0.0,
  group = 'blowback',
  description = 'blowback lookup (safe mode)',
  callback = function(task)
    if not safe_sender(task) then
      return
    end
    local ip = task:get_from_ip()
    if not ip or not ip:is_valid() then
      return
    end
    local name = table.concat(ip:inversed_str_octets(), '.') .. '.' .. zone
    task:get_resolver():resolve_a({
      task = task,
      name = name,
      forced = true,
      callback = function(_, _, results, err)
        if err or not results then
          return -- not listed (NXDOMAIN), or no answer: nothing to say
        end
        for _, r in ipairs(results) do
          local a = tostring(r)
          if codes[a] then
            task:insert_result(codes[a], 1.0, a)
          else
            rspamd_logger.infox(task, 'blowback: %s answered %s, no listing code: ignored', name, a)
            task:insert_result('RBL_BLOWBACK_REFUSED', 1.0, a)
          end
        end
      end,
    })
  end,
})

for _, sym in pairs(codes) do
  rspamd_config:register_symbol({ name = sym, type = 'virtual', parent = id, group = 'blowback' })
end
rspamd_config:register_symbol({ name = 'RBL_BLOWBACK_REFUSED', type = 'virtual', parent = id, group = 'blowback' })
