package luaapi

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"

	"github.com/switchyard-voice/switchyard/services/policy-runner/internal/sandbox"
)

// Problem is a misuse of the policy API found before the script runs.
type Problem struct {
	Line    int    `json:"line"`
	Message string `json:"message"`
}

func (p Problem) String() string { return fmt.Sprintf("line %d: %s", p.Line, p.Message) }

// Vet finds calls into the API that cannot work: a function the API does
// not have (call.anwser), a method session does not have, a global
// function that does not exist in policies (print, io.open). It is
// conservative: a name the script assigns anywhere is the script's own and
// not checked. The source must already compile.
func Vet(sb *sandbox.Sandbox, source string) ([]Problem, error) {
	chunk, err := parse.Parse(strings.NewReader(source), "policy")
	if err != nil {
		return nil, err
	}
	names := sb.Names(func(L *lua.LState) { Install(L) })
	for _, f := range callDataFields {
		names.Fields["call"][f] = true // set per run, when a call is bound
	}
	own := map[string]bool{}
	var uses []func() *Problem
	walk(reflect.ValueOf(chunk), func(n any) {
		switch x := n.(type) {
		case *ast.LocalAssignStmt:
			for _, name := range x.Names {
				own[name] = true
			}
		case *ast.NumberForStmt:
			own[x.Name] = true
		case *ast.GenericForStmt:
			for _, name := range x.Names {
				own[name] = true
			}
		case *ast.ParList:
			for _, name := range x.Names {
				own[name] = true
			}
		case *ast.AssignStmt:
			for _, e := range x.Lhs {
				if id, ok := e.(*ast.IdentExpr); ok {
					own[id.Value] = true
				}
			}
		case *ast.FuncDefStmt:
			if id, ok := x.Name.Func.(*ast.IdentExpr); ok {
				own[id.Value] = true
			}
		case *ast.AttrGetExpr:
			obj, ok1 := x.Object.(*ast.IdentExpr)
			key, ok2 := x.Key.(*ast.StringExpr)
			if !ok1 || !ok2 {
				return
			}
			uses = append(uses, func() *Problem {
				fields, isTable := names.Fields[obj.Value]
				if !own[obj.Value] && !names.Globals[obj.Value] {
					return &Problem{x.Line(), fmt.Sprintf("%s is not available in policies (%s.%s)", obj.Value, obj.Value, key.Value)}
				}
				if own[obj.Value] || !isTable || fields[key.Value] || obj.Value == "_G" || obj.Value == "argv" {
					return nil
				}
				return &Problem{x.Line(), fmt.Sprintf("%s.%s is not part of the policy API%s", obj.Value, key.Value, suggest(key.Value, fields))}
			})
		case *ast.FuncCallExpr:
			if recv, ok := x.Receiver.(*ast.IdentExpr); ok && x.Method != "" {
				uses = append(uses, func() *Problem {
					methods, isUD := names.Methods[recv.Value]
					if own[recv.Value] || !isUD || methods[x.Method] {
						return nil
					}
					return &Problem{x.Line(), fmt.Sprintf("%s:%s is not supported%s", recv.Value, x.Method, suggest(x.Method, methods))}
				})
			}
			if fn, ok := x.Func.(*ast.IdentExpr); ok {
				uses = append(uses, func() *Problem {
					if own[fn.Value] || names.Globals[fn.Value] {
						return nil
					}
					return &Problem{x.Line(), fmt.Sprintf("%s is not available in policies (the sandbox has no such global function)", fn.Value)}
				})
			}
		}
	})
	var out []Problem
	for _, use := range uses {
		if p := use(); p != nil {
			out = append(out, *p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out, nil
}

// suggest names a close match: a typo's likely intent.
func suggest(name string, known map[string]bool) string {
	best, bestD := "", 3
	for k := range known {
		if d := distance(strings.ToLower(name), strings.ToLower(k)); d < bestD || d == bestD && k < best {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return " (did you mean " + best + "?)"
}

// distance is the Levenshtein distance, for short names.
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// walk visits every AST node under v (pointers to structs from package
// ast), depth first.
func walk(v reflect.Value, visit func(any)) {
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return
		}
		if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct {
			visit(v.Interface())
		}
		walk(v.Elem(), visit)
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			walk(v.Index(i), visit)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				walk(v.Field(i), visit)
			}
		}
	}
}
