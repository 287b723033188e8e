package udpproxy

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
)

// ErrUnknownClient is returned by RebindClient for an address the proxy has
// no mapping for.
var ErrUnknownClient = errors.New("udpproxy: no mapping for this client address")

// Rebind simulates a NAT rebinding for every client the proxy has a mapping
// for: each one's upstream socket is replaced by a new socket, bound to a
// new ephemeral port, so the server sees the client's datagrams arrive from
// a new source address from then on. The old socket is closed at once, as a
// NAT drops a mapping it has forgotten: whatever the server sends to the old
// address is lost. The client side (Addr) and the fault settings do not
// change; datagrams still waiting in a ToServer delay queue leave through
// the new socket, and those waiting in a ToClient queue are still delivered.
//
// Rebind returns how many mappings it rebound. On an error (the proxy is
// closed, or a socket cannot be made) the mappings before the failing one
// are rebound and the rest keep their sockets.
func (p *Proxy) Rebind() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, net.ErrClosed
	}
	clients := slices.Collect(maps.Values(p.clients))
	for i, c := range clients {
		if err := p.rebindLocked(c); err != nil {
			return i, err
		}
	}
	return len(clients), nil
}

// RebindClient is Rebind for the one client whose datagrams come from
// clientAddr (the client's local address). It returns ErrUnknownClient if
// the proxy has no mapping for it, and net.ErrClosed once the proxy is
// closed.
func (p *Proxy) RebindClient(clientAddr *net.UDPAddr) error {
	addr := clientAddr.AddrPort()
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return net.ErrClosed
	}
	c := p.clients[addr]
	if c == nil {
		return fmt.Errorf("%w: %s", ErrUnknownClient, clientAddr)
	}
	return p.rebindLocked(c)
}

// rebindLocked gives c a new upstream socket and starts its reader. p.mu is
// held and the proxy is not closed, so the WaitGroup slot taken here is
// taken before Close waits.
func (p *Proxy) rebindLocked(c *client) error {
	// The new socket is made while the old one is still bound, so the
	// kernel cannot hand out the same port again.
	up, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(p.server))
	if err != nil {
		return fmt.Errorf("udpproxy: rebind %s: %w", c.addr, err)
	}
	c.mu.Lock()
	// A mapping leaves p.clients, under p.mu, before it is stopped.
	old := c.upstream
	c.upstream = up
	p.wg.Add(1)
	go p.readServer(c, up)
	c.mu.Unlock()
	_ = old.Close()
	return nil
}

// UpstreamAddrs returns the local addresses of the current upstream
// sockets, one per client mapping: the source addresses the server sees.
func (p *Proxy) UpstreamAddrs() []*net.UDPAddr {
	p.mu.Lock()
	defer p.mu.Unlock()
	addrs := make([]*net.UDPAddr, 0, len(p.clients))
	for _, c := range p.clients {
		c.mu.Lock()
		addrs = append(addrs, c.upstream.LocalAddr().(*net.UDPAddr))
		c.mu.Unlock()
	}
	return addrs
}
