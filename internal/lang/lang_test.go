package lang

import "testing"

func TestFromAcceptLanguage(t *testing.T) {
	tests := []struct{ header, want string }{
		{"", EN},
		{"zh-CN,zh;q=0.9,en;q=0.8", ZH},
		{"en-US,en;q=0.9,zh-CN;q=0.8", EN},
		{"fr-FR, zh-TW;q=0.5", ZH},
		{"de", EN},
		{"zh;q=0, en", EN},
		{"zh;q=0.000,fr", EN},
		{"zh;q=0.01", ZH},
		{"ZH-cn", ZH},
		{"zhx, en", EN},
		{"*", EN},
	}
	for _, tc := range tests {
		if got := FromAcceptLanguage(tc.header); got != tc.want {
			t.Errorf("%q: %s, want %s", tc.header, got, tc.want)
		}
	}
}

func FuzzFromAcceptLanguage(f *testing.F) {
	f.Add("zh-CN,zh;q=0.9,en;q=0.8")
	f.Add("en;q=0, zh")
	f.Fuzz(func(t *testing.T, header string) {
		if got := FromAcceptLanguage(header); got != EN && got != ZH {
			t.Fatalf("%q: %q", header, got)
		}
	})
}
