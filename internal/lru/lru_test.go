package lru

import "testing"

func TestMap(t *testing.T) {
	m := New[string, int](2)
	zero := func() int { return 0 }
	a, added := m.Use("a", zero)
	if !added || *a != 0 {
		t.Fatalf("a: %v %v", *a, added)
	}
	*a = 1
	b, _ := m.Use("b", zero)
	*b = 2
	if v, added := m.Use("a", zero); added || *v != 1 { // a is now the most recent
		t.Fatalf("a again: %v %v", *v, added)
	}
	if v := m.Peek("b"); v == nil || *v != 2 { // Peek does not refresh b
		t.Fatalf("peek b: %v", v)
	}
	m.Use("c", zero) // full: forgets b, the least recently used
	if m.Len() != 2 || m.Peek("b") != nil || m.Peek("a") == nil || m.Peek("c") == nil {
		t.Fatalf("after c: len %d, b %v, a %v, c %v", m.Len(), m.Peek("b"), m.Peek("a"), m.Peek("c"))
	}
	if v, added := m.Use("b", func() int { return 7 }); !added || *v != 7 {
		t.Fatalf("b back: %v %v", *v, added)
	}
	if m.Peek("a") != nil { // a was the oldest now
		t.Fatal("a not forgotten")
	}
	if k, v, ok := m.Oldest(); !ok || k != "c" || *v != 0 { // Oldest does not mark c used
		t.Fatalf("oldest: %v %v %v", k, v, ok)
	}
	if k, _, _ := m.Oldest(); k != "c" {
		t.Fatalf("oldest again: %v", k)
	}
	if _, _, ok := New[int, int](3).Oldest(); ok {
		t.Fatal("oldest of an empty map")
	}
	if New[int, int](0).max != 1 {
		t.Fatal("capacity below 1")
	}
}
