package netns

import "fmt"

// filterTable is the nftables table the rule helpers fill; Flush removes it.
const filterTable = "inet rstpool_test"

const filterChains = `add table inet rstpool_test
add chain inet rstpool_test input { type filter hook input priority 0 ; }
add chain inet rstpool_test output { type filter hook output priority 0 ; }
add chain inet rstpool_test forward { type filter hook forward priority 0 ; }`

// Drop makes TCP port a black hole in this namespace: segments to or from
// it are dropped silently, whether they end here, start here or are
// forwarded. The peers see no FIN and no RST.
func (n *NS) Drop(port uint16) {
	n.t.Helper()
	n.Nft(filterChains + rulesFor(port, "drop"))
}

// Reset makes this namespace answer TCP segments to port, forwarded or
// local, with a forged RST (nft "reject with tcp reset").
func (n *NS) Reset(port uint16) {
	n.t.Helper()
	n.Nft(filterChains + fmt.Sprintf(`
add rule inet rstpool_test forward tcp dport %d reject with tcp reset
add rule inet rstpool_test input tcp dport %d reject with tcp reset`, port, port))
}

// Flush removes every rule Drop and Reset added.
func (n *NS) Flush() {
	n.t.Helper()
	n.Nft("delete table " + filterTable)
}

func rulesFor(port uint16, verdict string) string {
	var s string
	for _, chain := range []string{"input", "output", "forward"} {
		for _, dir := range []string{"dport", "sport"} {
			s += fmt.Sprintf("\nadd rule inet rstpool_test %s tcp %s %d %s", chain, dir, port, verdict)
		}
	}
	return s
}
