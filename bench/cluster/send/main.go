// Command send is bench/cluster's mail source: N bounces, each from its own
// source address on 127.0.0.0/8 (127.10.0.1, 127.10.0.2, ...), spread over
// the traps given; every message that got a 250 is written to -acked (one
// address per line, as it is acknowledged). A message without a 250 (trap
// killed, refused) is not retried: each address is used once, so an address
// with two stored events would be counted twice.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/smtp"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func addr(i int) netip.Addr {
	i++ // 127.10.0.1 first
	return netip.AddrFrom4([4]byte{127, byte(10 + i>>16), byte(i >> 8), byte(i)})
}

const dsn = "From: MAILER-DAEMON@mx%[1]d.example.net\r\nTo: <%[2]s>\r\nSubject: Undelivered Mail Returned to Sender\r\n" +
	"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nMessage-ID: <b%[1]d@mx.example.net>\r\n" +
	"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n--B\r\n" +
	"Content-Type: text/plain\r\n\r\nThis is the mail system. Your message could not be delivered.\r\n--B\r\n" +
	"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx%[1]d.example.net\r\n\r\n" +
	"Final-Recipient: rfc822; nobody%[1]d@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
	"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n" +
	"From: <%[2]s>\r\nTo: <nobody%[1]d@example.org>\r\nSubject: hello\r\nMessage-ID: <orig%[1]d@trap>\r\n--B--\r\n"

func send(trap string, i int, domain string) error {
	src := addr(i)
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	conn, err := d.Dial("tcp", trap)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	host, _, _ := net.SplitHostPort(trap)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	if err := c.Hello(fmt.Sprintf("mx%d.example.net", i)); err != nil {
		return err
	}
	if err := c.Mail(""); err != nil {
		return err
	}
	rcpt := fmt.Sprintf("u%d@%s", i%97, domain)
	if err := c.Rcpt(rcpt); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, dsn, i, rcpt); err != nil {
		return err
	}
	if err := w.Close(); err != nil { // the 250 (or not) to the end of DATA
		return err
	}
	c.Quit()
	return nil
}

func main() {
	n := flag.Int("n", 1000, "messages")
	traps := flag.String("traps", "", "comma-separated trap SMTP addresses")
	acked := flag.String("acked", "acked.txt", "file of acknowledged source addresses")
	conc := flag.Int("c", 16, "concurrent sessions")
	domain := flag.String("domain", "trap.blowback.test", "trap domain")
	flag.Parse()
	ts := strings.Split(*traps, ",")
	f, err := os.Create(*acked)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bw := bufio.NewWriter(f)
	var mu sync.Mutex
	var ok, failed atomic.Int64
	next := atomic.Int64{}
	start := time.Now()
	var wg sync.WaitGroup
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= *n {
					return
				}
				if err := send(ts[i%len(ts)], i, *domain); err != nil {
					failed.Add(1)
					continue
				}
				ok.Add(1)
				mu.Lock()
				fmt.Fprintln(bw, addr(i))
				bw.Flush() // the script watches progress in this file
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	bw.Flush()
	f.Close()
	el := time.Since(start).Seconds()
	fmt.Printf("send: acked=%d failed=%d seconds=%.1f rate=%.0f\n", ok.Load(), failed.Load(), el, float64(ok.Load())/el)
}
