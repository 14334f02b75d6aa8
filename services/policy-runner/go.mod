module github.com/switchyard-voice/switchyard/services/policy-runner

go 1.26

require github.com/yuin/gopher-lua v1.1.2
