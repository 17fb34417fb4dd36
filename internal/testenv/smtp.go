package testenv

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"time"
)

// Mail is one message an SMTP server received.
type Mail struct {
	From string
	To   []string
	Data string
}

// SMTPServer is a minimal real SMTP server on loopback that keeps what it receives.
type SMTPServer struct {
	Addr string
	ln   net.Listener
	mu   sync.Mutex
	msgs []Mail
	wg   sync.WaitGroup
}

// StartSMTP listens on a free loopback port.
func StartSMTP() (*SMTPServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &SMTPServer{Addr: ln.Addr().String(), ln: ln}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Close stops listening.
func (s *SMTPServer) Close() { s.ln.Close(); s.wg.Wait() }

// Messages returns a copy of what arrived so far.
func (s *SMTPServer) Messages() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.msgs...)
}

func (s *SMTPServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.session(c)
	}
}

func (s *SMTPServer) session(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	say := func(line string) { c.Write([]byte(line + "\r\n")) }
	say("220 testenv ESMTP")
	var cur Mail
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(verb, "EHLO"):
			say("250-testenv")
			say("250 8BITMIME")
		case strings.HasPrefix(verb, "HELO"):
			say("250 testenv")
		case strings.HasPrefix(verb, "MAIL FROM:"):
			cur = Mail{From: strings.Trim(line[10:], "<> ")}
			say("250 ok")
		case strings.HasPrefix(verb, "RCPT TO:"):
			cur.To = append(cur.To, strings.Trim(line[8:], "<> "))
			say("250 ok")
		case verb == "DATA":
			say("354 end with .")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if strings.TrimRight(l, "\r\n") == "." {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			cur.Data = b.String()
			s.mu.Lock()
			s.msgs = append(s.msgs, cur)
			s.mu.Unlock()
			say("250 queued")
		case verb == "QUIT":
			say("221 bye")
			return
		case verb == "RSET", verb == "NOOP":
			say("250 ok")
		default:
			say("502 not implemented")
		}
	}
}
