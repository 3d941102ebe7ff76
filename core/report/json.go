package report

import (
	"encoding/json"
	"io"
)

func init() { Register("json", renderJSON) }

func renderJSON(w io.Writer, r *Report) error {
	out := *r
	out.SchemaVersion = SchemaVersion
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(&out)
}
