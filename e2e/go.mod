module github.com/switchyard-voice/switchyard/e2e

go 1.26.0

require github.com/switchyard-voice/switchyard/pkg v0.0.0

replace github.com/switchyard-voice/switchyard/pkg => ../pkg
