package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The partition tests put a process in a network namespace of its own,
// joined to this host by veth pairs whose addresses exist only in that
// namespace and on the host's ends of the pairs (10.213.0.0/16, a private
// range), and cut one pair to make a partition. Everything is removed when
// the test ends, also when it fails.

// RequireNetnsEnv makes missing namespaces (not root, no `ip`) a failure
// instead of a skip (scripts/test.sh sets it with CI=true).
const requireNetnsEnv = "DEVICEGATE_REQUIRE_NETNS"

// netns is one network namespace made by the test.
type netns struct {
	t    *testing.T
	name string
	tag  string // short per-test tag for interface names (15 bytes at most)
}

// vethLink is a veth pair between the host and a namespace, a /30 with the
// host's end at HostIP and the namespace's at NSIP.
type vethLink struct {
	ns           *netns
	hostIf, nsIf string
	HostIP, NSIP string
	CIDR         string // the /30, for PostgreSQL's pg_hba
}

// newNetns creates a namespace with its loopback up, or skips (fails with
// DEVICEGATE_REQUIRE_NETNS=1) when this machine cannot.
func newNetns(t *testing.T) *netns {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "network namespaces need root"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "the ip command (iproute2) is missing"
	}
	tag := fmt.Sprintf("dg%d", os.Getpid()%100000)
	n := &netns{t: t, name: "devicegate-" + tag, tag: tag}
	if why == "" {
		if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
			why = fmt.Sprintf("ip netns add: %v: %s", err, out)
		}
	}
	if why != "" {
		if os.Getenv(requireNetnsEnv) == "1" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	// Deleting the namespace deletes the veth ends in it, and with them
	// their peers on the host.
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", n.name, err, out)
		}
	})
	n.ip("netns", "exec", n.name, "ip", "link", "set", "lo", "up")
	return n
}

// ip runs the ip command and fails the test if it fails.
func (n *netns) ip(args ...string) {
	n.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// link creates veth pair number i (0..63) between the host and n, up, with
// addresses 10.213.<block>.<4i+1> (host) and .<4i+2> (namespace); the
// block is taken from the process id so that two test processes do not
// share a subnet.
func (n *netns) link(i int) *vethLink {
	n.t.Helper()
	block := os.Getpid() % 250
	l := &vethLink{ns: n,
		hostIf: fmt.Sprintf("%sh%d", n.tag, i), nsIf: fmt.Sprintf("%sn%d", n.tag, i),
		HostIP: fmt.Sprintf("10.213.%d.%d", block, 4*i+1), NSIP: fmt.Sprintf("10.213.%d.%d", block, 4*i+2),
		CIDR: fmt.Sprintf("10.213.%d.%d/30", block, 4*i)}
	n.ip("link", "add", l.hostIf, "type", "veth", "peer", "name", l.nsIf, "netns", n.name)
	t := n.t
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", l.hostIf).Run() }) // gone already when the namespace went first
	n.ip("addr", "add", l.HostIP+"/30", "dev", l.hostIf)
	n.ip("link", "set", l.hostIf, "up")
	n.ip("netns", "exec", n.name, "ip", "addr", "add", l.NSIP+"/30", "dev", l.nsIf)
	n.ip("netns", "exec", n.name, "ip", "link", "set", l.nsIf, "up")
	return l
}

// cut takes the namespace's end of the link down: from then on the
// namespace has no route to the host's end, and packets in flight on its
// connections are lost.
func (l *vethLink) cut() {
	l.ns.ip("netns", "exec", l.ns.name, "ip", "link", "set", l.nsIf, "down")
}

// restore brings the namespace's end up again (its address and route come
// back with it).
func (l *vethLink) restore() {
	l.ns.ip("netns", "exec", l.ns.name, "ip", "link", "set", l.nsIf, "up")
}

// command is bin with args run inside the namespace.
func (n *netns) command(bin string, args ...string) (string, []string) {
	return "ip", append([]string{"netns", "exec", n.name, bin}, args...)
}
