package phones

import "fmt"

// grandstreamP names, per account slot, the P-values of Grandstream's
// model-independent provisioning format (<config version="1">). Source:
// Grandstream's configuration templates (config-template.zip on
// grandstream.com; e.g. "Configuration Template For GRP261x Firmware Version
// 1.0.5.15", the same numbers on GXP16xx/GXP21xx) and the Grandstream
// Provisioning Guide. Models with fewer accounts ignore the higher slots.
var grandstreamP = [MaxLines]map[string]string{
	gsAccount("P271", "P270", "P47", "P48", "P35", "P36", "P34", "P3", "P31", "P32", "P130"),
	gsAccount("P401", "P417", "P402", "P403", "P404", "P405", "P406", "P407", "P410", "P412", "P448"),
	gsAccount("P501", "P517", "P502", "P503", "P504", "P505", "P506", "P507", "P510", "P512", "P548"),
	gsAccount("P601", "P617", "P602", "P603", "P604", "P605", "P606", "P607", "P610", "P612", "P648"),
	gsAccount("P1701", "P1717", "P1702", "P1703", "P1704", "P1705", "P1706", "P1707", "P1710", "P1712", "P1748"),
	gsAccount("P1801", "P1817", "P1802", "P1803", "P1804", "P1805", "P1806", "P1807", "P1810", "P1812", "P1848"),
}

func gsAccount(active, name, server, proxy, user, auth, password, display, register, expiry, transport string) map[string]string {
	return map[string]string{
		"active": active, "name": name, "server": server, "proxy": proxy, "user": user, "auth": auth,
		"password": password, "display": display, "register": register, "expiry": expiry, "transport": transport,
	}
}

// grandstreamSlot is the template function gs: the P-value names of account
// slot n (1-based), e.g. {{$p := gs .Index}}<{{$p.server}}>.
func grandstreamSlot(n int) (map[string]string, error) {
	if n < 1 || n > MaxLines {
		return nil, fmt.Errorf("grandstream account slot %d outside 1..%d", n, MaxLines)
	}
	return grandstreamP[n-1], nil
}
