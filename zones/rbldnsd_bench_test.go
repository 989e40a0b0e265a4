package zones

import (
	"bytes"
	"os"
	"testing"
)

// BenchmarkParseRbldnsd parses a zone file: the one named by
// BLOWBACK_ZONE_FILE (e.g. bench/dns/genzone's 10M-line file), or the 1M
// entries of makeBig as WriteRbldnsd writes them. Profile the load with
//
//	BLOWBACK_ZONE_FILE=/tmp/z10m.rbldnsd go test ./zones -run '^$' -bench ParseRbldnsd -benchtime 3x -cpuprofile cpu.out
func BenchmarkParseRbldnsd(b *testing.B) {
	var data []byte
	if f := os.Getenv("BLOWBACK_ZONE_FILE"); f != "" {
		var err error
		if data, err = os.ReadFile(f); err != nil {
			b.Fatal(err)
		}
	} else {
		var buf bytes.Buffer
		if err := WriteRbldnsd(&buf, bigZone(), SOA{}.WithDefaults("bl.example")); err != nil {
			b.Fatal(err)
		}
		data = buf.Bytes()
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, _, _, err := ParseRbldnsd(bytes.NewReader(data), "bl.example", RbldnsdOptions{SizeHint: int64(len(data))})
		if err != nil {
			b.Fatal(err)
		}
		if s.Len() == 0 {
			b.Fatal("empty")
		}
	}
}
