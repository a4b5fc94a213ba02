package span

// Interner returns one shared string for each distinct byte sequence it is
// given, so the many spans naming the same service or operation share
// storage and decoding them allocates nothing once names have been seen.
//
// It is bounded: when it holds Max strings it forgets them all and starts
// again, so a stream of distinct names (a cardinality attack, a bug that puts
// ids into span names) cannot grow it without limit. An Interner is not safe
// for concurrent use; give each decoder its own.
type Interner struct {
	// Max is the most strings held before the table is reset. Zero means 65536.
	Max int

	m map[string]string
}

// Bytes returns the interned string equal to b. It does not retain b.
func (in *Interner) Bytes(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := in.m[string(b)]; ok { // no allocation: the compiler elides the conversion
		return s
	}
	return in.add(string(b))
}

// String returns the interned string equal to s.
func (in *Interner) String(s string) string {
	if s == "" {
		return ""
	}
	if t, ok := in.m[s]; ok {
		return t
	}
	return in.add(s)
}

func (in *Interner) add(s string) string {
	max := in.Max
	if max <= 0 {
		max = 1 << 16
	}
	if in.m == nil || len(in.m) >= max {
		in.m = make(map[string]string, 256)
	}
	in.m[s] = s
	return s
}

// Len returns the number of strings currently held.
func (in *Interner) Len() int { return len(in.m) }
