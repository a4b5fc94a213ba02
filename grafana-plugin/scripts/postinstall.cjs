// node_modules holds a few Go files (e.g. flatted's Go port); a go.mod here
// makes it a module of its own, so the repository's `go test ./...` and
// `go vet ./...` skip it.
require('fs').writeFileSync(require('path').join(__dirname, '..', 'node_modules', 'go.mod'), 'module nodemodules.invalid\n');
