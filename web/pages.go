package web

import (
	"html/template"
	"net/http"
)

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{if .Query}}{{.Query}} — {{end}}blowback backscatter list</title></head>
<body>
<main>
<h1>blowback backscatter list</h1>
<form action="/lookup" method="get">
<label for="ip">IP address</label>
<input id="ip" name="ip" value="{{.Query}}" required>
<button type="submit">Look up</button>
</form>
{{if .Error}}<p role="alert">{{.Error}}</p>{{end}}
{{with .Lookup}}
<h2>{{.IP}} is {{if .Listed}}listed{{else}}not listed{{end}}</h2>
<p>{{.Reason}}</p>
{{if .Listed}}<p>Return codes: {{range .Codes}}{{.}} {{end}}</p>{{end}}
{{end}}
</main>
</body></html>
`))

type pageData struct {
	Query  string
	Error  string
	Lookup *Lookup
}

func (s *Server) render(w http.ResponseWriter, code int, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	pageTmpl.Execute(w, d)
}

func (s *Server) pageIndex(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, pageData{})
}

func (s *Server) pageLookup(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("ip")
	a, err := parseIP(q)
	if err != nil {
		s.render(w, http.StatusBadRequest, pageData{Query: q, Error: err.Error()})
		return
	}
	l, err := s.lookup(a)
	if err != nil {
		s.render(w, http.StatusInternalServerError, pageData{Query: q, Error: "internal error"})
		return
	}
	s.render(w, http.StatusOK, pageData{Query: q, Lookup: &l})
}
