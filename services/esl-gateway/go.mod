module github.com/switchyard-voice/switchyard/services/esl-gateway

go 1.26

require github.com/switchyard-voice/switchyard/pkg v0.0.0

replace github.com/switchyard-voice/switchyard/pkg => ../../pkg
