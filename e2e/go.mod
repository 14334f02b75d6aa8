module github.com/switchyard-voice/switchyard/e2e

go 1.26
