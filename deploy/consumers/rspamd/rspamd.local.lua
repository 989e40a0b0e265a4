-- rspamd: /etc/rspamd/rspamd.local.lua -- the "safe mode" condition for
-- blowback: true when the SMTP envelope sender is null (<>) or postmaster@.
rspamd_config:register_symbol({
  name = 'BLOWBACK_SAFE_SENDER',
  score = 0.0,
  group = 'blowback',
  description = 'Null or postmaster envelope sender (blowback safe mode)',
  callback = function(task)
    local from = task:get_from('smtp')
    if not from or not from[1] or (from[1].addr or '') == '' then
      return true
    end
    return string.lower(from[1].user or '') == 'postmaster'
  end,
})
