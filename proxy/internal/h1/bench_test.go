package h1

import "testing"

// BenchmarkParseHead: a browser's request head as the fast path sees it.
func BenchmarkParseHead(b *testing.B) {
	raw := []byte("GET /orders/sold?page=2 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36\r\n" +
		"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: zh-CN,zh;q=0.9,en;q=0.8\r\nAccept-Encoding: gzip, deflate, br\r\n" +
		"Cookie: bo_session=abcdef0123456789; theme=dark\r\nReferer: https://shop.example/orders\r\nSec-Fetch-Dest: document\r\nSec-Fetch-Mode: navigate\r\n" +
		"Sec-Fetch-Site: same-origin\r\nUpgrade-Insecure-Requests: 1\r\nConnection: keep-alive\r\n\r\n")
	var h Head
	b.ReportAllocs()
	for b.Loop() {
		if ParseHead(raw, &h) != Complete {
			b.Fatal("not complete")
		}
	}
}
