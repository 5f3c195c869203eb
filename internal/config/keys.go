package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/pbxd/pbxd/internal/percent"
)

var cfgType = reflect.TypeOf(Config{})

// checkKeys walks the YAML tree against the struct type and names the first
// unknown key by its full path ("http.listn (line 4)"), which is more useful
// to an operator than the decoder's Go type names.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == reflect.TypeOf(Percent{}) {
			if _, err := percent.Parse(n.Value); err != nil {
				return fmt.Errorf("%s (line %d): %q %v", strings.TrimPrefix(path, "."), n.Line, n.Value, err)
			}
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%s (line %d): expected a mapping", strings.TrimPrefix(path, "."), n.Line)
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name != "" && name != "-" {
				fields[name] = f.Type
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			ft, ok := fields[k]
			if !ok {
				return fmt.Errorf("unknown key %s (line %d)", strings.TrimPrefix(path+"."+k, "."), n.Content[i].Line)
			}
			if err := checkKeys(n.Content[i+1], ft, path+"."+k); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil // the decoder reports the type error
		}
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	}
	return nil
}

// Percent is a percentage read as basis points from 15 or "12.5".
type Percent struct{ BP int64 }

// UnmarshalYAML reads a percentage without floats.
func (p *Percent) UnmarshalYAML(n *yaml.Node) error {
	bp, err := percent.Parse(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q %v", n.Line, n.Value, err)
	}
	p.BP = bp
	return nil
}
