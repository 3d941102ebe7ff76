package events

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// FuzzReadEvents feeds arbitrary bytes to the reader and the summary: nothing may panic, every line is
// counted exactly once, and every event returned has an op.
func FuzzReadEvents(f *testing.F) {
	for _, name := range []string{"testdata/audit-web.jsonl", "testdata/interleaved.log", "testdata/recorded/bookworm-audit.jsonl"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := NewSummary(Limits{Keys: 8, Groups: 8})
		r := NewReader(bytes.NewReader(data), "fuzz")
		for {
			e, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("read error from a bytes.Reader: %v", err)
			}
			if e.Op == "" {
				t.Fatalf("event without op from %q", data)
			}
			s.Add(&e)
		}
		st := r.Stats()
		if st.Lines != st.Events+st.Skipped+st.Malformed+st.Oversized {
			t.Fatalf("lines %d != events+skipped+malformed+oversized in %+v", st.Lines, st)
		}
		if nl := int64(bytes.Count(data, []byte("\n"))); st.Lines < nl || st.Lines > nl+1 {
			t.Fatalf("lines %d for %d newlines", st.Lines, nl)
		}
		if s.ByProgram.Len() > 8 {
			t.Fatalf("counter exceeded its bound")
		}
		s.AddStats(st)
		for _, format := range Formats {
			if err := Render(io.Discard, format, s, RenderOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	})
}
