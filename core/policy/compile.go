package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
)

// Layout constants of the compiled format (docs/compiled-policy.md).
const (
	Magic         = "CRSCIPOL"
	FormatVersion = 1
	headerSize    = 64
	blockSize     = 96
	ruleSize      = 48
	indexSize     = 16
	cidrSize      = 32
	portSize      = 4
	noRef         = 0xFFFFFFFF
	maxCompiled   = 1 << 30
)

type strtab struct {
	buf []byte
	idx map[string]uint32
}

func newStrtab() *strtab {
	return &strtab{buf: []byte{0}, idx: map[string]uint32{"": 0}}
}

func (t *strtab) ref(s string) uint32 {
	if r, ok := t.idx[s]; ok {
		return r
	}
	r := uint32(len(t.buf))
	t.buf = append(t.buf, s...)
	t.buf = append(t.buf, 0)
	t.idx[s] = r
	return r
}

type indexEntry struct {
	key, pattern string
	rule         uint32
	literal      bool
}

// Compile turns a policy without error findings into the binary format of docs/compiled-policy.md.
// The same policy always gives the same bytes.
func Compile(p *Policy) ([]byte, error) {
	if p == nil {
		return nil, fmt.Errorf("compiling policy: no policy")
	}
	st := newStrtab()
	nameRef := st.ref(p.name)
	sinkRef := uint32(noRef)
	if p.Sink != SinkStderr {
		sinkRef = st.ref(p.SinkPath)
	}
	var (
		rules      bytes.Buffer
		pool       []uint32
		cidrs      [][2][16]byte
		ports      [][2]uint16
		fileIdx    []indexEntry
		execIdx    []indexEntry
		le         = binary.LittleEndian
		rec        [ruleSize]byte
		ruleCounts = len(p.Rules)
	)
	for i, r := range p.Rules {
		if r.Category < File || r.Category > Syscall {
			return nil, fmt.Errorf("compiling policy %s: rule %q has no category", p.name, r.Name)
		}
		clear(rec[:])
		le.PutUint32(rec[0:], st.ref(r.Name))
		prog := uint32(noRef)
		if r.Program != "" {
			prog = st.ref(r.Program)
		}
		le.PutUint32(rec[4:], prog)
		rec[8] = byte(r.Category)
		rec[9] = byte(r.Action)
		if r.Category == File || r.Category == Network {
			rec[10] = r.Access
		}
		if r.Category == Network {
			rec[11] = r.Protocol
			rs := mergeCIDRs(r.Prefixes)
			le.PutUint32(rec[12:], uint32(len(cidrs)))
			le.PutUint32(rec[16:], uint32(len(rs)))
			cidrs = append(cidrs, rs...)
			ps := mergePorts(r.Ports)
			le.PutUint32(rec[20:], uint32(len(ports)))
			le.PutUint32(rec[24:], uint32(len(ps)))
			ports = append(ports, ps...)
		} else {
			le.PutUint32(rec[12:], uint32(len(cidrs)))
			le.PutUint32(rec[20:], uint32(len(ports)))
		}
		le.PutUint32(rec[28:], uint32(len(pool)))
		le.PutUint32(rec[32:], uint32(len(r.Paths)))
		for _, pat := range r.Paths {
			ref := st.ref(pat)
			pool = append(pool, ref)
			e := indexEntry{key: indexKey(pat), pattern: pat, rule: uint32(i), literal: isLiteral(pat)}
			switch r.Category {
			case File:
				fileIdx = append(fileIdx, e)
			case Exec:
				execIdx = append(execIdx, e)
			}
		}
		le.PutUint32(rec[36:], uint32(len(pool)))
		le.PutUint32(rec[40:], uint32(len(r.Syscalls)))
		for _, name := range r.Syscalls {
			e, ok := lookupSyscall(name)
			if !ok {
				return nil, fmt.Errorf("compiling policy %s: rule %q: unknown system call %q", p.name, r.Name, name)
			}
			pool = append(pool, sysnr(e.X86_64), sysnr(e.Aarch64))
		}
		le.PutUint32(rec[44:], uint32(r.Line))
		rules.Write(rec[:])
	}
	sortIndex(fileIdx)
	sortIndex(execIdx)
	idxBytes := func(es []indexEntry) []byte {
		out := make([]byte, 0, len(es)*indexSize)
		var b [indexSize]byte
		for _, e := range es {
			le.PutUint32(b[0:], st.ref(e.key))
			le.PutUint32(b[4:], st.ref(e.pattern))
			le.PutUint32(b[8:], e.rule)
			flags := uint32(0)
			if e.literal {
				flags = 1
			}
			le.PutUint32(b[12:], flags)
			out = append(out, b[:]...)
		}
		return out
	}
	fileBytes := idxBytes(fileIdx)
	execBytes := idxBytes(execIdx)
	poolBytes := make([]byte, 4*len(pool))
	for i, v := range pool {
		le.PutUint32(poolBytes[4*i:], v)
	}
	cidrBytes := make([]byte, 0, cidrSize*len(cidrs))
	for _, c := range cidrs {
		cidrBytes = append(cidrBytes, c[0][:]...)
		cidrBytes = append(cidrBytes, c[1][:]...)
	}
	portBytes := make([]byte, portSize*len(ports))
	for i, pr := range ports {
		le.PutUint16(portBytes[4*i:], pr[0])
		le.PutUint16(portBytes[4*i+2:], pr[1])
	}

	out := make([]byte, headerSize+blockSize)
	section := func(b []byte) uint32 {
		for len(out)%8 != 0 {
			out = append(out, 0)
		}
		off := uint32(len(out))
		out = append(out, b...)
		return off
	}
	rulesOff := section(rules.Bytes())
	fileOff := section(fileBytes)
	execOff := section(execBytes)
	poolOff := section(poolBytes)
	cidrOff := section(cidrBytes)
	portOff := section(portBytes)
	strOff := section(st.buf)
	for len(out)%8 != 0 {
		out = append(out, 0)
	}
	if len(out) > maxCompiled {
		return nil, fmt.Errorf("compiling policy %s: compiled form is %d bytes, more than the %d the probe accepts", p.name, len(out), maxCompiled)
	}

	blk := out[headerSize:]
	blk[0] = modeByte(p.Mode)
	blk[1] = p.LogMask
	blk[2] = byte(p.Defaults[File])
	blk[3] = byte(p.Defaults[Network])
	blk[4] = byte(p.Defaults[Exec])
	blk[5] = byte(p.Defaults[Syscall])
	blk[6] = p.Sink
	le.PutUint32(blk[8:], p.Ignore)
	le.PutUint32(blk[12:], nameRef)
	le.PutUint32(blk[16:], sinkRef)
	le.PutUint32(blk[20:], uint32(ruleCounts))
	le.PutUint32(blk[24:], rulesOff)
	le.PutUint32(blk[28:], uint32(len(fileIdx)))
	le.PutUint32(blk[32:], fileOff)
	le.PutUint32(blk[36:], uint32(len(execIdx)))
	le.PutUint32(blk[40:], execOff)
	le.PutUint32(blk[44:], uint32(len(pool)))
	le.PutUint32(blk[48:], poolOff)
	le.PutUint32(blk[52:], uint32(len(cidrs)))
	le.PutUint32(blk[56:], cidrOff)
	le.PutUint32(blk[60:], uint32(len(ports)))
	le.PutUint32(blk[64:], portOff)
	le.PutUint32(blk[68:], uint32(len(st.buf)))
	le.PutUint32(blk[72:], strOff)

	copy(out[0:8], Magic)
	le.PutUint16(out[8:], FormatVersion)
	le.PutUint16(out[10:], headerSize)
	le.PutUint32(out[12:], uint32(len(out)))
	sum := sha256.Sum256(out[headerSize:])
	copy(out[16:48], sum[:])
	return out, nil
}

func sysnr(n int) uint32 {
	if n < 0 {
		return NoSyscall
	}
	return uint32(n)
}

func modeByte(m string) byte {
	switch m {
	case ModeOff:
		return 0
	case ModeAudit:
		return 1
	}
	return 2
}

func sortIndex(es []indexEntry) {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].key != es[j].key {
			return es[i].key < es[j].key
		}
		return es[i].rule < es[j].rule
	})
}

// ipv6Bytes returns a as 16 bytes, IPv4 as v4-mapped IPv6.
func ipv6Bytes(a netip.Addr) [16]byte {
	if a.Is4() {
		return netip.AddrFrom16(a.As16()).As16()
	}
	return a.As16()
}

func prefixRange(pf netip.Prefix) [2][16]byte {
	pf = pf.Masked()
	first := ipv6Bytes(pf.Addr())
	bits := pf.Bits()
	if pf.Addr().Is4() {
		bits += 96
	}
	last := first
	for i := bits; i < 128; i++ {
		last[i/8] |= 0x80 >> (i % 8)
	}
	return [2][16]byte{first, last}
}

// mergeCIDRs turns prefixes into sorted, merged address ranges (overlapping or adjacent joined).
func mergeCIDRs(pfs []netip.Prefix) [][2][16]byte {
	rs := make([][2][16]byte, 0, len(pfs))
	for _, pf := range pfs {
		rs = append(rs, prefixRange(pf))
	}
	sort.Slice(rs, func(i, j int) bool {
		if c := bytes.Compare(rs[i][0][:], rs[j][0][:]); c != 0 {
			return c < 0
		}
		return bytes.Compare(rs[i][1][:], rs[j][1][:]) < 0
	})
	var out [][2][16]byte
	for _, r := range rs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			next, overflow := inc16(last[1])
			if overflow || bytes.Compare(r[0][:], next[:]) <= 0 {
				if bytes.Compare(r[1][:], last[1][:]) > 0 {
					last[1] = r[1]
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

func inc16(a [16]byte) ([16]byte, bool) {
	for i := 15; i >= 0; i-- {
		a[i]++
		if a[i] != 0 {
			return a, false
		}
	}
	return a, true
}

// mergePorts sorts and merges port ranges.
func mergePorts(ps [][2]uint16) [][2]uint16 {
	rs := append([][2]uint16(nil), ps...)
	sort.Slice(rs, func(i, j int) bool {
		if rs[i][0] != rs[j][0] {
			return rs[i][0] < rs[j][0]
		}
		return rs[i][1] < rs[j][1]
	})
	var out [][2]uint16
	for _, r := range rs {
		if n := len(out); n > 0 && (out[n-1][1] == 65535 || uint32(r[0]) <= uint32(out[n-1][1])+1) {
			if r[1] > out[n-1][1] {
				out[n-1][1] = r[1]
			}
			continue
		}
		out = append(out, r)
	}
	return out
}
