package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

// Compiled is a loaded, verified compiled policy.
type Compiled struct {
	sha      string
	Name     string
	Mode     string
	LogMask  uint8
	Defaults [5]Action // indexed by Category
	Sink     uint8
	SinkPath string
	Ignore   uint32
	Rules    []CompiledRule
	fileIdx  []indexEntry
	execIdx  []indexEntry
	size     int
}

// CompiledRule is one rule as the probe sees it.
type CompiledRule struct {
	Name     string
	Program  string // "" with HasProgram false: any program
	HasProg  bool
	Category Category
	Action   Action
	Access   uint8 // file access mask or network direction mask
	Protocol uint8
	Ranges   [][2][16]byte
	Ports    [][2]uint16
	Paths    []string
	Syscalls [][2]uint32 // x86_64, aarch64
	Line     int
}

// SHA256 is the hex SHA-256 of the whole compiled file: the policy's identity.
func (c *Compiled) SHA256() string { return c.sha }

// Size is the compiled file's size in bytes.
func (c *Compiled) Size() int { return c.size }

type reader struct {
	b   []byte
	err error
}

func (r *reader) u32(off uint64) uint32 {
	if r.err != nil {
		return 0
	}
	if off+4 > uint64(len(r.b)) {
		r.err = fmt.Errorf("offset %d is outside the file", off)
		return 0
	}
	return binary.LittleEndian.Uint32(r.b[off:])
}

// table checks that count entries of size bytes at off lie inside the file.
func (r *reader) table(what string, off, count uint32, size uint64) {
	if r.err != nil {
		return
	}
	end := uint64(off) + uint64(count)*size
	if uint64(off) < headerSize+blockSize || end > uint64(len(r.b)) {
		r.err = fmt.Errorf("%s (offset %d, %d entries) lies outside the file (%d bytes)", what, off, count, len(r.b))
	}
}

// Load verifies a compiled policy (magic, version, size, hash, every offset and count) and reads it.
// A bad file gives an error (exit code 3: a corrupt input); Load never panics or reads out of bounds.
func Load(b []byte) (*Compiled, error) {
	c, err := load(b)
	if err != nil {
		return nil, exitcode.Operationalf("loading compiled policy: %w", err)
	}
	return c, nil
}

func load(b []byte) (*Compiled, error) {
	if len(b) < headerSize+blockSize {
		return nil, fmt.Errorf("file is %d bytes, shorter than the %d-byte header and policy block", len(b), headerSize+blockSize)
	}
	if string(b[:8]) != Magic {
		return nil, fmt.Errorf("bad magic %q (want %q)", b[:8], Magic)
	}
	le := binary.LittleEndian
	if v := le.Uint16(b[8:]); v == 0 || v > FormatVersion {
		return nil, fmt.Errorf("format version %d is not supported (this crs-ci reads version %d)", v, FormatVersion)
	}
	if hs := le.Uint16(b[10:]); hs != headerSize {
		return nil, fmt.Errorf("header size %d (want %d)", hs, headerSize)
	}
	if total := le.Uint32(b[12:]); uint64(total) != uint64(len(b)) {
		return nil, fmt.Errorf("header says %d bytes, file has %d", total, len(b))
	}
	sum := sha256.Sum256(b[headerSize:])
	if !bytes.Equal(sum[:], b[16:48]) {
		return nil, fmt.Errorf("body hash mismatch: the file is corrupt")
	}
	whole := sha256.Sum256(b)
	r := &reader{b: b}
	blk := uint64(headerSize)
	c := &Compiled{sha: hex.EncodeToString(whole[:]), size: len(b)}
	switch b[blk] {
	case 0:
		c.Mode = ModeOff
	case 1:
		c.Mode = ModeAudit
	case 2:
		c.Mode = ModeEnforce
	default:
		return nil, fmt.Errorf("mode %d is not 0, 1 or 2", b[blk])
	}
	c.LogMask = b[blk+1]
	for i, cat := range []Category{File, Network, Exec, Syscall} {
		a := Action(b[blk+2+uint64(i)])
		if a > Alert {
			return nil, fmt.Errorf("default %s action %d is not 0, 1 or 2", cat, a)
		}
		c.Defaults[cat] = a
	}
	c.Sink = b[blk+6]
	if c.Sink > SinkUnix {
		return nil, fmt.Errorf("event sink kind %d is not 0, 1 or 2", c.Sink)
	}
	c.Ignore = r.u32(blk + 8)
	nameRef, sinkRef := r.u32(blk+12), r.u32(blk+16)
	nRules, rulesOff := r.u32(blk+20), r.u32(blk+24)
	nFile, fileOff := r.u32(blk+28), r.u32(blk+32)
	nExec, execOff := r.u32(blk+36), r.u32(blk+40)
	nPool, poolOff := r.u32(blk+44), r.u32(blk+48)
	nCIDR, cidrOff := r.u32(blk+52), r.u32(blk+56)
	nPort, portOff := r.u32(blk+60), r.u32(blk+64)
	strSize, strOff := r.u32(blk+68), r.u32(blk+72)
	r.table("rules", rulesOff, nRules, ruleSize)
	r.table("file index", fileOff, nFile, indexSize)
	r.table("exec index", execOff, nExec, indexSize)
	r.table("u32 pool", poolOff, nPool, 4)
	r.table("CIDR table", cidrOff, nCIDR, cidrSize)
	r.table("port table", portOff, nPort, portSize)
	r.table("string table", strOff, strSize, 1)
	if r.err != nil {
		return nil, r.err
	}
	strs := b[strOff : uint64(strOff)+uint64(strSize)]
	if len(strs) == 0 || strs[0] != 0 || strs[len(strs)-1] != 0 {
		return nil, fmt.Errorf("string table must start and end with a NUL byte")
	}
	str := func(ref uint32, what string) (string, error) {
		if uint64(ref) >= uint64(len(strs)) {
			return "", fmt.Errorf("%s: string ref %d is outside the string table (%d bytes)", what, ref, len(strs))
		}
		end := bytes.IndexByte(strs[ref:], 0)
		return string(strs[ref : int(ref)+end]), nil
	}
	var err error
	if c.Name, err = str(nameRef, "policy name"); err != nil {
		return nil, err
	}
	if c.Sink != SinkStderr {
		if c.SinkPath, err = str(sinkRef, "sink path"); err != nil {
			return nil, err
		}
	}
	pool := func(i uint32) uint32 { return le.Uint32(b[uint64(poolOff)+4*uint64(i):]) }
	inRange := func(first, count, total uint32) bool { return uint64(first)+uint64(count) <= uint64(total) }
	if uint64(nRules) > uint64(len(b))/ruleSize {
		return nil, fmt.Errorf("rule count %d is impossible for the file size", nRules)
	}
	c.Rules = make([]CompiledRule, nRules)
	for i := range c.Rules {
		rec := b[uint64(rulesOff)+uint64(i)*ruleSize:][:ruleSize]
		cr := &c.Rules[i]
		what := fmt.Sprintf("rule %d", i)
		if cr.Name, err = str(le.Uint32(rec[0:]), what+" name"); err != nil {
			return nil, err
		}
		if pr := le.Uint32(rec[4:]); pr != noRef {
			cr.HasProg = true
			if cr.Program, err = str(pr, what+" program"); err != nil {
				return nil, err
			}
		}
		cr.Category = Category(rec[8])
		if cr.Category < File || cr.Category > Syscall {
			return nil, fmt.Errorf("%s: category %d is not 1-4", what, rec[8])
		}
		cr.Action = Action(rec[9])
		if cr.Action > Alert {
			return nil, fmt.Errorf("%s: action %d is not 0, 1 or 2", what, rec[9])
		}
		cr.Access, cr.Protocol = rec[10], rec[11]
		if cr.Protocol > ProtoUDP {
			return nil, fmt.Errorf("%s: protocol %d is not 0, 1 or 2", what, cr.Protocol)
		}
		cf, cn := le.Uint32(rec[12:]), le.Uint32(rec[16:])
		pf, pn := le.Uint32(rec[20:]), le.Uint32(rec[24:])
		xf, xn := le.Uint32(rec[28:]), le.Uint32(rec[32:])
		sf, sn := le.Uint32(rec[36:]), le.Uint32(rec[40:])
		cr.Line = int(le.Uint32(rec[44:]))
		if !inRange(cf, cn, nCIDR) || !inRange(pf, pn, nPort) || !inRange(xf, xn, nPool) || uint64(sf)+2*uint64(sn) > uint64(nPool) {
			return nil, fmt.Errorf("%s: a CIDR, port or pool range lies outside its table", what)
		}
		for k := cf; k < cf+cn; k++ {
			e := b[uint64(cidrOff)+uint64(k)*cidrSize:][:cidrSize]
			var rg [2][16]byte
			copy(rg[0][:], e[:16])
			copy(rg[1][:], e[16:])
			cr.Ranges = append(cr.Ranges, rg)
		}
		for k := pf; k < pf+pn; k++ {
			e := b[uint64(portOff)+uint64(k)*portSize:]
			cr.Ports = append(cr.Ports, [2]uint16{le.Uint16(e), le.Uint16(e[2:])})
		}
		for k := xf; k < xf+xn; k++ {
			s, err := str(pool(k), what+" path pattern")
			if err != nil {
				return nil, err
			}
			cr.Paths = append(cr.Paths, s)
		}
		for k := uint32(0); k < sn; k++ {
			cr.Syscalls = append(cr.Syscalls, [2]uint32{pool(sf + 2*k), pool(sf + 2*k + 1)})
		}
	}
	readIndex := func(what string, off, n uint32, cat Category) ([]indexEntry, error) {
		out := make([]indexEntry, n)
		for i := range out {
			e := b[uint64(off)+uint64(i)*indexSize:][:indexSize]
			key, err := str(le.Uint32(e[0:]), what)
			if err != nil {
				return nil, err
			}
			pat, err := str(le.Uint32(e[4:]), what)
			if err != nil {
				return nil, err
			}
			ri := le.Uint32(e[8:])
			if uint64(ri) >= uint64(len(c.Rules)) || c.Rules[ri].Category != cat {
				return nil, fmt.Errorf("%s entry %d: rule %d is not a %s rule", what, i, ri, cat)
			}
			out[i] = indexEntry{key: key, pattern: pat, rule: ri, literal: le.Uint32(e[12:])&1 != 0}
			// Decide trusts the key and the literal flag (as the probe's lookup does): both must be what the
			// format says, as probe/src/decide.c's loader also requires.
			if len(pat) == 0 || pat[0] != '/' || key != indexKey(pat) || out[i].literal != isLiteral(pat) {
				return nil, fmt.Errorf("%s entry %d: key %q or literal flag %v does not fit its pattern %q (want key %q, literal %v)",
					what, i, key, out[i].literal, pat, indexKey(pat), isLiteral(pat))
			}
			if i > 0 && (out[i-1].key > key || (out[i-1].key == key && out[i-1].rule > ri)) {
				return nil, fmt.Errorf("%s is not sorted at entry %d", what, i)
			}
		}
		return out, nil
	}
	if c.fileIdx, err = readIndex("file index", fileOff, nFile, File); err != nil {
		return nil, err
	}
	if c.execIdx, err = readIndex("exec index", execOff, nExec, Exec); err != nil {
		return nil, err
	}
	return c, nil
}

// Request is one call to decide, as the probe sees it.
type Request struct {
	Category Category
	Op       string     // operation name (Ops); only decides whether the event is logged
	Path     string     // file and exec: the normalised absolute path; network: the unix socket path
	Unix     bool       // network: the address is a unix socket (Path)
	Addr     netip.Addr // network: the IP address
	Port     uint16
	Access   uint8 // file: AccessRead|AccessWrite; network: Outbound or Inbound
	Protocol uint8 // ProtoTCP, ProtoUDP, or ProtoAny when unknown
	Program  string
	Syscall  uint32 // the syscall number on Arch
	Arch     string // "amd64" (default) or "arm64": which syscall numbering
}

// Decision is the answer for one request.
type Decision struct {
	Action   Action
	Rule     int    // index of the deciding rule, -1 for the category default
	RuleName string // "" for the default
	Logged   bool   // whether the probe writes an event (log mask, ignore mask, mode not off)
}

// Decide answers a request with the semantics of docs/compiled-policy.md, the same as the C probe.
func (c *Compiled) Decide(q Request) Decision {
	idx := c.match(q)
	d := Decision{Rule: idx}
	if idx >= 0 {
		d.Action, d.RuleName = c.Rules[idx].Action, c.Rules[idx].Name
	} else if q.Category >= File && q.Category <= Syscall {
		d.Action = c.Defaults[q.Category]
	}
	if c.Mode != ModeOff {
		bit := [...]uint8{Allow: LogAllow, Deny: LogDeny, Alert: LogAlert}[d.Action%3]
		d.Logged = c.LogMask&bit != 0
		if b := OpBit(q.Op); b >= 0 && c.Ignore&(1<<b) != 0 {
			d.Logged = false
		}
	}
	return d
}

func (c *Compiled) progOK(r *CompiledRule, prog string) bool {
	return !r.HasProg || matchGlob(r.Program, prog)
}

func (c *Compiled) match(q Request) int {
	switch q.Category {
	case File, Exec:
		idx := c.fileIdx
		if q.Category == Exec {
			idx = c.execIdx
		}
		best := -1
		p := q.Path
		for i := 0; i < len(p); i++ {
			if p[i] != '/' {
				continue
			}
			key := p[:i+1]
			j := sort.Search(len(idx), func(k int) bool { return idx[k].key >= key })
			for ; j < len(idx) && idx[j].key == key; j++ {
				e := &idx[j]
				if best >= 0 && int(e.rule) >= best {
					continue
				}
				r := &c.Rules[e.rule]
				if q.Category == File && r.Access&q.Access == 0 {
					continue
				}
				if e.literal {
					if e.pattern != p {
						continue
					}
				} else if !matchGlob(e.pattern, p) {
					continue
				}
				if !c.progOK(r, q.Program) {
					continue
				}
				best = int(e.rule)
			}
		}
		return best
	case Network:
		var a16 [16]byte
		if !q.Unix {
			a16 = ipv6Bytes(q.Addr)
		}
		for i := range c.Rules {
			r := &c.Rules[i]
			if r.Category != Network || r.Access&q.Access == 0 {
				continue
			}
			if r.Protocol != ProtoAny && r.Protocol != q.Protocol {
				continue
			}
			if !c.progOK(r, q.Program) {
				continue
			}
			if len(r.Paths) == 0 && len(r.Ranges) == 0 && len(r.Ports) == 0 {
				return i
			}
			if q.Unix {
				for _, pat := range r.Paths {
					if matchGlob(pat, q.Path) {
						return i
					}
				}
				continue
			}
			if len(r.Paths) > 0 {
				continue
			}
			if len(r.Ranges) > 0 && !inRanges(r.Ranges, a16) {
				continue
			}
			if len(r.Ports) > 0 && !inPorts(r.Ports, q.Port) {
				continue
			}
			return i
		}
	case Syscall:
		col := 0
		if q.Arch == "arm64" {
			col = 1
		}
		for i := range c.Rules {
			r := &c.Rules[i]
			if r.Category != Syscall || !c.progOK(r, q.Program) {
				continue
			}
			for _, pair := range r.Syscalls {
				if pair[col] == q.Syscall && pair[col] != NoSyscall {
					return i
				}
			}
		}
	}
	return -1
}

func inRanges(rs [][2][16]byte, a [16]byte) bool {
	for _, r := range rs {
		if bytes.Compare(a[:], r[0][:]) >= 0 && bytes.Compare(a[:], r[1][:]) <= 0 {
			return true
		}
	}
	return false
}

func inPorts(ps [][2]uint16, p uint16) bool {
	for _, r := range ps {
		if r[0] <= p && p <= r[1] {
			return true
		}
	}
	return false
}
