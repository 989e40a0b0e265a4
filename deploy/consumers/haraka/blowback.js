// Haraka: plugins/blowback.js -- blowback in "safe mode".
//
// Haraka's own dns-list plugin cannot be used for a backscatter list: it
// asks at connect, for every client (no safe mode), and takes any A record
// for a listing, the refusal codes 127.255.255.x included (it filters those
// only for zones named *spamhaus*). This plugin asks only for mail whose
// envelope sender is null (<>) or postmaster@ (bounces and callouts) and
// rejects at MAIL FROM only on a listing code (127.0.0.2-5). Any other
// answer, a lookup error or a timeout lets the mail through.
//
// Install: copy to plugins/blowback.js and config/blowback.ini of your
// Haraka, add "blowback" to config/plugins.

const dns = require('node:dns').promises
const net = require('node:net')

exports.register = function () {
  this.load_blowback_ini()
  this.register_hook('mail', 'check_blowback')
}

exports.load_blowback_ini = function () {
  this.cfg = this.config.get('blowback.ini', () => this.load_blowback_ini())
  const main = this.cfg.main || {}
  this.zone = (main.zone || 'bl.blowback.test').replace(/\.$/, '')
  this.codes = new Set(String(main.codes || '127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5').split(/[\s,;]+/).filter(Boolean))
  this.resolver = new dns.Resolver({ timeout: (parseInt(main.timeout, 10) || 5) * 1000, tries: 2 })
}

// 192.0.2.9 -> 9.2.0.192; 2001:db8::1 -> the 32 nibbles reversed.
exports.reversed = function (ip) {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip)
  if (m) ip = m[1]
  if (net.isIPv4(ip)) return ip.split('.').reverse().join('.')
  if (!net.isIPv6(ip)) return null
  let [head, tail] = ip.split('::')
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t]
  return groups.map((g) => g.padStart(4, '0')).join('').split('').reverse().join('.')
}

exports.check_blowback = async function (next, connection, params) {
  const from = params[0]
  const user = from && from.user ? String(from.user).toLowerCase() : ''
  if (user !== '' && user !== 'postmaster') return next() // safe mode
  const rev = this.reversed(connection.remote.ip)
  if (!rev) return next()
  const name = `${rev}.${this.zone}`
  let answers
  try {
    answers = await this.resolver.resolve4(name)
  } catch (err) {
    if (err.code !== dns.NOTFOUND && err.code !== dns.NODATA) {
      connection.logwarn(this, `${name}: ${err.code || err}`)
    }
    return next()
  }
  const listed = answers.filter((a) => this.codes.has(a))
  if (listed.length === 0) {
    // 127.255.255.x: the list refused the query (public resolver, quota, key).
    connection.logwarn(this, `${name}: ${answers.join(',')} is no listing code (ignored)`)
    return next()
  }
  let text = ''
  try {
    text = (await this.resolver.resolveTxt(name)).map((r) => r.join('')).join(' ')
  } catch (err) {
    // the TXT is a courtesy
  }
  connection.results.add(this, { fail: this.zone, msg: listed.join(',') })
  next(DENY, `${connection.remote.ip} sends backscatter, listed in ${this.zone}${text ? ': ' + text : ''}`)
}
