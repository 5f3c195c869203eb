package clock

import (
	"testing"
	"time"
)

func TestZonesNamed(t *testing.T) {
	var z Zones
	paris := z.Named("Europe/Paris")
	if paris.String() != "Europe/Paris" {
		t.Fatalf("Named(Europe/Paris) = %v", paris)
	}
	if again := z.Named("Europe/Paris"); again != paris {
		t.Error("a second Named loaded the zone again instead of the cached one")
	}
	if got := z.Named("Mars/Olympus"); got != time.UTC {
		t.Errorf("Named(unknown) = %v, want UTC", got)
	}
}
