module github.com/switchyard-voice/switchyard/services/esl-gateway

go 1.26.0

require github.com/switchyard-voice/switchyard/pkg v0.0.0

require golang.org/x/sync v0.24.0 // indirect

replace github.com/switchyard-voice/switchyard/pkg => ../../pkg
