package topics

import (
	"iter"
	"strings"
)

// fewChildren is the most literal children a node keeps in a slice before
// switching to a map. Most nodes of a real tree have one child (the levels
// of a device id or client id are unique), and a one-entry slice costs 24
// bytes where a one-entry map costs about 250; comparing up to this many
// short strings is also no slower than hashing one.
const fewChildren = 8

// children is the set of literal next levels below a trie node, N being
// the node type (shared by Tree and Retained). It is a slice while small
// and a map once large, and goes back to a slice when it shrinks, which
// also returns the memory of a map that once held many entries (a Go map
// never shrinks on its own).
type children[N any] struct {
	few  []edge[N]     // used while there are at most fewChildren
	many map[string]*N // used beyond that; few is nil then
}

// edge is one literal child in the small form.
type edge[N any] struct {
	level string
	node  *N
}

// get returns the child for level, or nil.
func (c *children[N]) get(level string) *N {
	if c.many != nil {
		return c.many[level]
	}
	for i := range c.few {
		if c.few[i].level == level {
			return c.few[i].node
		}
	}
	return nil
}

// add inserts a child for level, which must not be present.
func (c *children[N]) add(level string, n *N) {
	// Clone the level: it is a substring of the caller's filter or topic,
	// which may live in a large packet buffer the trie would otherwise pin.
	level = strings.Clone(level)
	switch {
	case c.many != nil:
		c.many[level] = n
	case len(c.few) < fewChildren:
		c.few = append(c.few, edge[N]{level, n})
	default:
		c.many = make(map[string]*N, 2*fewChildren)
		for _, e := range c.few {
			c.many[e.level] = e.node
		}
		c.many[level] = n
		c.few = nil
	}
}

// remove deletes the child for level, if present.
func (c *children[N]) remove(level string) {
	if c.many != nil {
		delete(c.many, level)
		// Go back to a slice well below the switch-over point, so a count
		// hovering at fewChildren does not convert back and forth.
		if len(c.many) <= fewChildren/2 {
			few := make([]edge[N], 0, len(c.many))
			for l, n := range c.many {
				few = append(few, edge[N]{l, n})
			}
			c.few, c.many = few, nil
		}
		return
	}
	for i := range c.few {
		if c.few[i].level == level {
			last := len(c.few) - 1
			c.few[i] = c.few[last]
			c.few[last] = edge[N]{}
			c.few = c.few[:last]
			if last == 0 {
				c.few = nil
			}
			return
		}
	}
}

// len is the number of children.
func (c *children[N]) len() int {
	if c.many != nil {
		return len(c.many)
	}
	return len(c.few)
}

// all yields every child with its level, in no particular order.
func (c *children[N]) all() iter.Seq2[string, *N] {
	return func(yield func(string, *N) bool) {
		if c.many != nil {
			for l, n := range c.many {
				if !yield(l, n) {
					return
				}
			}
			return
		}
		for _, e := range c.few {
			if !yield(e.level, e.node) {
				return
			}
		}
	}
}
