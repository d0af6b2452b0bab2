package backoffice

import "html/template"

// Fake data: buyer names, phones and addresses are what the high-risk
// permission points protect.
var (
	orders = [][]string{
		{"Order", "Buyer", "Phone", "Address"},
		{"20261124-0001", "Li Wei", "138****1234", "Hangzhou, Xihu District"},
		{"20261124-0002", "Zhang Min", "139****5678", "Shanghai, Pudong"},
		{"20261124-0003", "Wang Fang", "137****9012", "Beijing, Chaoyang"},
	}
	members = [][]string{
		{"Member", "Level", "Phone"},
		{"Li Wei", "Gold", "138****1234"},
		{"Zhang Min", "Silver", "139****5678"},
	}
	products = [][]string{
		{"Product", "Price", "Stock"},
		{"Green tea 250 g", "68.00", "120"},
		{"Tea cup set", "129.00", "35"},
	}
)

var loginTmpl = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Back office login</title></head>
<body><main>
<h1>Back office</h1>
{{with .}}{{with .Error}}<p role="alert">{{.}}</p>{{end}}{{end}}
<form method="post" action="/login">
<p><label for="username">Sub-account (store:name)</label><br><input id="username" name="username" autocomplete="username" required></p>
<p><label for="password">Password</label><br><input id="password" name="password" type="password" autocomplete="current-password" required></p>
<p><button type="submit">Log in</button></p>
</form>
</main></body></html>
`))

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body><main>
<p>Logged in as <strong id="user">{{.User}}</strong></p>
<nav><a href="/products">Products</a> | <a href="/orders/sold">Sold items</a> | <a href="/shipping">Shipping</a> |
<a href="/members">Members</a> | <a href="/orders/export.csv">Export orders</a></nav>
<h1>{{.Title}}</h1>
{{if .Rows}}<table>{{range $i, $r := .Rows}}<tr>{{range $r}}{{if eq $i 0}}<th>{{.}}</th>{{else}}<td>{{.}}</td>{{end}}{{end}}</tr>{{end}}</table>{{end}}
<form method="post" action="/logout"><button type="submit">Log out</button></form>
</main></body></html>
`))
