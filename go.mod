module github.com/ringwal/ringwal

go 1.26.8

require (
	github.com/dustin/go-humanize v1.1.0
	github.com/iceber/iouring-go v0.0.0-20230403020409-002cfd2e2a90
	github.com/stretchr/testify v1.12.1
	golang.org/x/sys v0.50.0
)

require (
	github.com/klauspost/crc32 v1.3.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)
