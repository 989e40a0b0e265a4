// blowback: query a backscatter list in "safe mode" from Haraka.
//
// Haraka's dns-list plugin checks lists at connect, for every message, and
// its backscatter check (at MAIL) is wired to one list's name. A
// backscatter list must only be asked about bounces and sender callouts:
// mail whose envelope sender is empty (<>) or postmaster@. This plugin does
// that, at MAIL FROM, and only answers 127.0.0.2-5 count as a listing; any
// other answer (a list's refusal or error code, e.g. 127.255.255.254) is
// logged and ignored, so that no mail is lost to a list that refuses to
// answer. Config: config/blowback.ini.

const dns = require('node:dns').promises
const net = require('node:net')

const CODES = new Set(['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'])

exports.register = function () {
  this.load_blowback_ini()
  this.resolver = new dns.Resolver({ timeout: this.cfg.main.timeout_ms, tries: 2 })
  this.register_hook('mail', 'check_sender_host')
}

exports.load_blowback_ini = function () {
  this.cfg = this.config.get(
    'blowback.ini',
    { booleans: ['+main.skip_private', '+main.reject'] },
    () => this.load_blowback_ini(),
  )
  this.cfg.main.zone = (this.cfg.main.zone || 'bl.blowback.test').replace(/\.$/, '')
  this.cfg.main.timeout_ms = parseInt(this.cfg.main.timeout_ms, 10) || 5000
}

// queryName is the RFC 5782 name for ip under zone: reversed octets for
// IPv4 (and IPv4-mapped IPv6), 32 reversed nibbles for IPv6.
function queryName(ip, zone) {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip)
  if (m) ip = m[1]
  if (net.isIPv4(ip)) return `${ip.split('.').reverse().join('.')}.${zone}`
  if (!net.isIPv6(ip)) return null
  const [head, tail = ''] = ip.split('::')
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t]
  if (!ip.includes('::') && groups.length !== 8) return null
  const hex = groups.map((g) => g.padStart(4, '0')).join('')
  return `${hex.split('').reverse().join('.')}.${zone}`
}
exports.queryName = queryName

exports.check_sender_host = async function (next, connection, params) {
  const from = params[0]
  const user = from?.user ? from.user.toLowerCase() : null
  if (user && user !== 'postmaster') return next() // not a bounce or callout
  const ip = connection.remote.ip
  if (this.cfg.main.skip_private && connection.remote.is_private) return next()
  const name = queryName(ip, this.cfg.main.zone)
  if (!name) return next()
  let answers
  try {
    answers = await this.resolver.resolve4(name)
  } catch (err) {
    if (err.code !== dns.NOTFOUND && err.code !== dns.NODATA) {
      connection.logwarn(this, `${name}: ${err.code || err}`) // never a listing
    }
    return next()
  }
  const codes = answers.filter((a) => CODES.has(a))
  const other = answers.filter((a) => !CODES.has(a))
  if (other.length) {
    connection.logwarn(this, `${this.cfg.main.zone} answered ${other.join(',')} for ${ip}: not a listing (refusal or error code)`)
  }
  if (!codes.length) return next()
  connection.results.add(this, { fail: this.cfg.main.zone, codes })
  if (!this.cfg.main.reject) return next()
  return next(DENY, `${ip} sends backscatter: listed in ${this.cfg.main.zone} (${codes.join(',')})`)
}
