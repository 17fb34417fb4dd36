package filter

// This file is a budgeted JSON Logic evaluator. It follows github.com/diegoholiveira/jsonlogic/v3
// (v3.5.1), the evaluator filters were validated and run with before, function by function and
// quirk by quirk (operators evaluate every argument, "and" of numbers is their maximum, "some"
// substitutes the element's fields into its condition, and so on), so a stored filter means
// what it meant. What the library cannot do is stop: it has no step count, cannot be interrupted,
// and one 4 KB rule of three nested "some" over 300-element arrays ran for 34 s inside the
// fan-out, delaying every other subscriber of the event. Here every operation, every element an
// operator walks, copies or builds and every few bytes of a string it scans or builds cost
// steps, and evaluation stops with ErrBudget when a rule has spent its budget. The allocation
// of each step is bounded too, so the budget bounds memory as well as CPU. The library stays
// as the reference: FuzzEvaluatorAgrees checks the two agree wherever the library answers and
// the budget is not hit.
//
// Like the library, the port leans on Go's run-time checks (type assertions, index bounds) for
// rules that do not fit their operator; Match recovers those into an error, and the budget
// check unwinds with a panic of its own type, which keeps every helper free of error plumbing.

import (
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// budgetExceeded is the panic value that unwinds an evaluation that spent its budget.
type budgetExceeded struct{}

// undefined stands for JavaScript's undefined in comparisons (the library's undefinedType).
type undefined struct{}

// machine evaluates one rule on one document within a budget of steps.
type machine struct {
	steps, budget int
}

// charge spends n steps.
func (m *machine) charge(n int) {
	m.steps += n
	if m.steps > m.budget {
		panic(budgetExceeded{})
	}
}

// chargeBytes spends the steps of scanning or building n bytes of string.
func (m *machine) chargeBytes(n int) { m.charge(1 + n/bytesPerStep) }

// bytesPerStep is how many bytes of string handling cost one step: about what one operation
// node costs in time.
const bytesPerStep = 32

func (m *machine) run(rule, data any) any {
	switch r := rule.(type) {
	case map[string]any:
		return m.apply(r, data)
	case []any:
		var parsed []any
		for _, v := range r {
			parsed = append(parsed, m.parseValues(v, data))
		}
		return parsed
	}
	return rule
}

func isBool(v any) bool   { _, ok := v.(bool); return ok }
func isString(v any) bool { _, ok := v.(string); return ok }
func isNumber(v any) bool { _, ok := v.(float64); return ok }
func isMap(v any) bool    { _, ok := v.(map[string]any); return ok }
func isSlice(v any) bool  { _, ok := v.([]any); return ok }

func isPrimitive(v any) bool { return isBool(v) || isString(v) || isNumber(v) }

func isTrue(v any) bool {
	switch t := v.(type) {
	case bool:
		return t
	case float64:
		return t != 0
	case string:
		return len(t) > 0
	case []any:
		return len(t) > 0
	case map[string]any:
		return len(t) > 0
	}
	return false
}

func (m *machine) toNumber(v any) float64 {
	if s, ok := v.(string); ok {
		m.chargeBytes(len(s))
		w, _ := strconv.ParseFloat(s, 64)
		return w
	}
	return v.(float64) // panics on anything else, as the library does
}

func toString(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	if v == nil {
		return ""
	}
	return v.(string)
}

func (m *machine) parseValues(values, data any) any {
	m.charge(1)
	if values == nil || isPrimitive(values) {
		return values
	}
	if r, ok := values.(map[string]any); ok {
		return m.apply(r, data)
	}
	in := values.([]any)
	m.charge(len(in))
	parsed := make([]any, 0, len(in))
	for _, v := range in {
		if r, ok := v.(map[string]any); ok {
			parsed = append(parsed, m.apply(r, data))
		} else {
			parsed = append(parsed, v)
		}
	}
	return parsed
}

func (m *machine) apply(rule map[string]any, data any) any {
	m.charge(1)
	if len(rule) > 1 { // a map with more than one key is a value, not an operation
		return rule
	}
	for op, values := range rule {
		switch op {
		case "filter":
			return m.filter(values, data)
		case "map":
			return m.mapOp(values, data)
		case "reduce":
			return m.reduce(values, data)
		case "all":
			return m.all(values, data)
		case "none":
			return m.none(values, data)
		case "some":
			return m.some(values, data)
		}
		return m.operation(op, m.parseValues(values, data), data)
	}
	return map[string]any{}
}

// subject is the array an iterating operator walks: a literal array or what a rule yields.
func (m *machine) subject(first, data any) any {
	var s any
	if isSlice(first) {
		s = first
	}
	if r, ok := first.(map[string]any); ok {
		s = m.apply(r, data)
	}
	return s
}

func (m *machine) filter(values, data any) any {
	parsed := values.([]any)
	subject := m.subject(parsed[0], data)
	result := make([]any, 0)
	if subject == nil {
		return result
	}
	logic := m.solveVars(parsed[1], data)
	for _, v := range subject.([]any) {
		m.charge(1)
		if isTrue(m.parseValues(logic, v)) {
			result = append(result, v)
		}
	}
	return result
}

func (m *machine) mapOp(values, data any) any {
	parsed := values.([]any)
	subject := m.subject(parsed[0], data)
	result := make([]any, 0)
	if subject == nil {
		return result
	}
	logic := m.solveVars(parsed[1], data)
	for _, v := range subject.([]any) {
		m.charge(1)
		out := m.parseValues(logic, v)
		if isTrue(out) || isNumber(out) {
			result = append(result, out)
		}
	}
	return result
}

func (m *machine) reduce(values, data any) any {
	parsed := values.([]any)
	subject := m.subject(parsed[0], data)
	if subject == nil {
		return float64(0)
	}
	var acc any
	var kind string
	switch {
	case isBool(parsed[2]):
		acc, kind = isTrue(parsed[2]), "bool"
	case isNumber(parsed[2]):
		acc, kind = m.toNumber(parsed[2]), "number"
	case isString(parsed[2]):
		acc, kind = toString(parsed[2]), "string"
	default:
		panic(errorString("reduce: the initial value must be a boolean, number or string"))
	}
	ctx := map[string]any{"current": float64(0), "accumulator": acc, "valueType": kind}
	for _, v := range subject.([]any) {
		m.charge(1)
		if v == nil {
			continue
		}
		m.charge(4) // the round's context, a new map
		// A fresh context each round: the library's is one map it writes into, but nothing can
		// keep a reference to it across rounds, and the data it shares must stay unchanged.
		ctx = map[string]any{"current": v, "accumulator": ctx["accumulator"], "valueType": kind}
		out := m.apply(parsed[1].(map[string]any), ctx)
		switch kind {
		case "bool":
			ctx["accumulator"] = isTrue(out)
		case "number":
			ctx["accumulator"] = m.toNumber(out)
		case "string":
			ctx["accumulator"] = toString(out)
		}
	}
	return ctx["accumulator"]
}

func (m *machine) all(values, data any) any {
	parsed := values.([]any)
	var subject any
	if r, ok := parsed[0].(map[string]any); ok {
		subject = m.apply(r, data)
	}
	if isSlice(parsed[0]) {
		subject = parsed[0]
	}
	if !isTrue(subject) {
		return false
	}
	for _, v := range subject.([]any) {
		m.charge(1)
		if !isTrue(m.applyAny(m.solveVars(parsed[1], v), v)) {
			return false
		}
	}
	return true
}

func (m *machine) none(values, data any) any {
	parsed := values.([]any)
	var subject any
	if r, ok := parsed[0].(map[string]any); ok {
		subject = m.apply(r, data)
	}
	if isSlice(parsed[0]) {
		subject = parsed[0]
	}
	if !isTrue(subject) {
		return true
	}
	conditions := m.solveVars(parsed[1], data)
	for _, v := range subject.([]any) {
		m.charge(1)
		if isTrue(m.applyAny(conditions, v)) {
			return false
		}
	}
	return true
}

func (m *machine) some(values, data any) any {
	parsed := values.([]any)
	var subject any
	if r, ok := parsed[0].(map[string]any); ok {
		subject = m.apply(r, data)
	}
	if isSlice(parsed[0]) {
		subject = parsed[0]
	}
	if !isTrue(subject) {
		return false
	}
	for _, v := range subject.([]any) {
		m.charge(1)
		if isTrue(m.applyAny(m.solveVars(m.solveVars(parsed[1], v), data), v)) {
			return true
		}
	}
	return false
}

// applyAny is the library's apply on a value that must be a rule: anything else panics.
func (m *machine) applyAny(rule, data any) any {
	return m.apply(rule.(map[string]any), data)
}

func (m *machine) operation(op string, values, data any) any {
	switch op {
	case "missing":
		return m.missing(values, data)
	case "missing_some":
		return m.missingSome(values, data)
	case "var":
		return m.getVar(values, data)
	case "set":
		return m.set(values, data)
	case "cat":
		return m.concat(values)
	case "substr":
		return m.substr(values)
	case "merge":
		return m.merge(values, 0)
	case "if":
		return m.conditional(values, data)
	}
	if isPrimitive(values) {
		return m.unary(op, values)
	}
	switch op {
	case "max":
		return m.maxOp(values)
	case "min":
		return m.minOp(values)
	}
	if values == nil {
		return nil
	}
	parsed := values.([]any)
	switch op {
	case "and":
		return m.and(parsed)
	case "or":
		return m.or(parsed)
	}
	if len(parsed) == 1 {
		return m.unary(op, parsed[0])
	}
	switch op {
	case "?:":
		if parsed[0].(bool) {
			return parsed[1]
		}
		return parsed[2]
	case "+":
		return m.sum(parsed)
	case "-":
		return m.minus(parsed)
	case "*":
		return m.mult(parsed)
	case "/":
		return m.div(parsed)
	case "in":
		return m.in(parsed[0], parsed[1])
	case "in_sorted":
		return m.inSorted(parsed[0], parsed[1])
	case "%":
		return math.Mod(m.toNumber(parsed[0]), m.toNumber(parsed[1]))
	}
	if len(parsed) == 3 {
		return m.between(op, parsed, data)
	}
	switch op {
	case "<":
		return m.less(at(parsed, 0), at(parsed, 1))
	case ">":
		return m.less(at(parsed, 1), at(parsed, 0))
	case "<=":
		return m.less(parsed[0], parsed[1]) || m.equals(parsed[0], parsed[1])
	case ">=":
		return m.less(parsed[1], parsed[0]) || m.equals(parsed[0], parsed[1])
	case "===":
		return m.hardEquals(parsed[0], parsed[1])
	case "!=":
		return !m.equals(parsed[0], parsed[1])
	case "!==":
		return !m.hardEquals(parsed[0], parsed[1])
	case "==":
		return m.equals(parsed[0], parsed[1])
	}
	panic(errorString("the operator " + strconv.Quote(op) + " is not supported"))
}

// errorString is a run-time failure of a rule.
type errorString string

func (e errorString) Error() string { return string(e) }

func (m *machine) unary(op string, v any) any {
	switch op {
	case "+", "*", "/":
		return m.toNumber(v)
	case "-":
		return -1 * m.toNumber(v)
	case "!!":
		return isTrue(v)
	case "abs":
		return math.Abs(m.toNumber(v))
	case "!":
		return !isTrue(v)
	}
	return isTrue(v)
}

func (m *machine) and(values []any) any {
	m.charge(len(values))
	var v float64
	boolean := true
	for _, value := range values {
		if isSlice(value) {
			return value
		}
		if b, ok := value.(bool); ok && !b {
			return false
		}
		if s, ok := value.(string); ok && s == "" {
			return value
		}
		if !isNumber(value) {
			continue
		}
		boolean = false
		if n := m.toNumber(value); n > v {
			v = n
		}
	}
	if boolean {
		return true
	}
	return v
}

func (m *machine) or(values []any) any {
	m.charge(len(values))
	for _, v := range values {
		if isTrue(v) {
			return v
		}
	}
	return false
}

// between evaluates its already evaluated arguments once more, as the library does: an object
// that event data put there is read as a rule.
func (m *machine) between(op string, v []any, data any) any {
	a, b, c := m.parseValues(v[0], data), m.parseValues(v[1], data), m.parseValues(v[2], data)
	switch op {
	case "<":
		return m.less(a, b) && m.less(b, c)
	case "<=":
		return (m.less(a, b) || m.equals(a, b)) && (m.less(b, c) || m.equals(b, c))
	case ">=":
		return (m.less(c, b) || m.equals(c, b)) && (m.less(b, a) || m.equals(b, a))
	}
	return m.less(c, b) && m.less(b, a)
}

func (m *machine) inRange(value, values any) bool {
	v := values.([]any)
	i, j := v[0], v[1]
	if isNumber(value) {
		return m.toNumber(value) >= m.toNumber(i) && m.toNumber(j) >= m.toNumber(value)
	}
	si, sj, sv := toString(i), toString(j), toString(value)
	m.chargeBytes(len(si) + len(sj) + 2*len(sv))
	return sv >= si && sj >= sv
}

func (m *machine) inSorted(value, values any) bool {
	list := values.([]any)
	str := func(v any) string {
		s := toString(v)
		m.chargeBytes(len(s))
		return s
	}
	find := func(i int) bool {
		if pair, ok := list[i].([]any); ok {
			return (str(pair[0]) <= str(value) && str(pair[1]) >= str(value)) || str(pair[1]) > str(value)
		}
		return str(list[i]) >= str(value)
	}
	i := sort.Search(len(list), find)
	if i >= len(list) {
		return false
	}
	if pair, ok := list[i].([]any); ok {
		return str(pair[0]) <= str(value) && str(pair[1]) >= str(value)
	}
	return str(list[i]) == str(value)
}

func (m *machine) in(value, values any) bool {
	if value == nil || values == nil {
		return false
	}
	if s, ok := values.(string); ok {
		sub := value.(string)
		m.chargeBytes(len(s) + len(sub))
		return strings.Contains(s, sub)
	}
	for _, element := range values.([]any) {
		m.charge(1)
		if isSlice(element) {
			if m.inRange(value, element) {
				return true
			}
			continue
		}
		if isNumber(value) {
			if m.toNumber(element) == value {
				return true
			}
			continue
		}
		if s, ok := element.(string); ok {
			m.chargeBytes(len(s))
		}
		if element == value { // panics on two maps, as the library does
			return true
		}
	}
	return false
}

func (m *machine) maxOp(values any) any {
	list := values.([]any)
	if len(list) == 0 {
		return nil
	}
	m.charge(len(list))
	bigger := m.toNumber(list[0])
	for _, v := range list[1:] {
		if n := m.toNumber(v); n > bigger {
			bigger = n
		}
	}
	return bigger
}

func (m *machine) minOp(values any) any {
	list := values.([]any)
	if len(list) == 0 {
		return nil
	}
	m.charge(len(list))
	smallest := m.toNumber(list[0])
	for _, v := range list[1:] {
		if n := m.toNumber(v); smallest > n {
			smallest = n
		}
	}
	return smallest
}

func (m *machine) merge(values any, level int) any {
	m.charge(1)
	result := make([]any, 0)
	if isPrimitive(values) || level > 1 {
		return append(result, values)
	}
	if list, ok := values.([]any); ok {
		for _, v := range list {
			result = append(result, m.merge(v, level+1).([]any)...)
			m.charge(len(result) / 64) // appends copy the growing result now and then
		}
	}
	return result
}

func (m *machine) conditional(values, data any) any {
	if isPrimitive(values) {
		return values
	}
	parsed := values.([]any)
	n := len(parsed)
	if n == 0 {
		return nil
	}
	for i := 0; i < n-1; i += 2 {
		m.charge(1)
		v := parsed[i]
		if isMap(v) {
			v = m.getVar(parsed[i], data)
		}
		if isTrue(v) {
			return m.parseValues(parsed[i+1], data)
		}
	}
	if n%2 == 1 {
		return parsed[n-1]
	}
	return nil
}

func (m *machine) set(values, data any) any {
	v := values.([]any)
	object := v[0]
	obj, ok := object.(map[string]any)
	if !ok {
		return object
	}
	property := v[1].(string)
	modified := m.deepCopy(obj).(map[string]any)
	modified[property] = m.parseValues(v[2], data)
	return modified
}

// deepCopy copies maps and arrays, a step per value.
func (m *machine) deepCopy(v any) any {
	m.charge(1)
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = m.deepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = m.deepCopy(x)
		}
		return out
	}
	return v
}

func (m *machine) missing(values, data any) any {
	if isString(values) {
		values = []any{values}
	}
	out := make([]any, 0)
	for _, v := range values.([]any) {
		m.charge(1)
		if m.getVar(v, data) == nil {
			out = append(out, v)
		}
	}
	return out
}

func (m *machine) missingSome(values, data any) any {
	parsed := values.([]any)
	number := int(m.toNumber(parsed[0]))
	missing, found := make([]any, 0), 0
	for _, v := range parsed[1].([]any) {
		m.charge(1)
		if m.getVar(v, data) == nil {
			missing = append(missing, v)
		} else {
			found++
		}
	}
	if number > found {
		return missing
	}
	return make([]any, 0)
}

func (m *machine) solveVars(values, data any) any {
	m.charge(1)
	switch t := values.(type) {
	case map[string]any:
		m.charge(4) // a new map: several times an operation's time
		logic := map[string]any{}
		for key, value := range t {
			if key == "var" {
				if s, ok := value.(string); ok && (s == "" || strings.HasPrefix(s, ".")) {
					logic["var"] = value
					continue
				}
				if val := m.getVar(value, data); val != nil {
					return val
				}
				logic["var"] = value
			} else {
				logic[key] = m.solveVars(value, data)
			}
		}
		return logic
	case []any:
		m.charge(1 + len(t))
		logic := []any{}
		for _, v := range t {
			logic = append(logic, m.solveVars(v, data))
		}
		return logic
	}
	return values
}

func (m *machine) getVar(value, data any) any {
	m.charge(1)
	if value == nil {
		return data
	}
	if s, ok := value.(string); ok && s == "" {
		return data
	}
	if isNumber(value) {
		value = toString(value)
	}
	var def any
	if v, ok := value.([]any); ok {
		if len(v) == 0 {
			return data
		}
		if len(v) == 2 {
			def = v[1]
		}
		value = v[0].(string)
	}
	if data == nil {
		return def
	}
	path := value.(string)
	m.chargeBytes(len(path))
	var out any
	for _, part := range strings.Split(path, ".") {
		m.charge(1)
		if part == "" {
			continue
		}
		if d, ok := data.(map[string]any); ok {
			out = d[part]
		}
		if d, ok := data.([]any); ok {
			pos := int(m.toNumber(part))
			if pos >= len(d) {
				return def
			}
			out = d[pos] // a negative index panics, as in the library
		}
		if out == nil {
			return def
		}
		if isPrimitive(out) {
			continue
		}
		data = out
	}
	return out
}

func (m *machine) substr(values any) any {
	parsed := values.([]any)
	s := toString(parsed[0])
	m.chargeBytes(len(s))
	runes := []rune(s)
	from := int(m.toNumber(parsed[1]))
	length := len(runes)
	if from < 0 {
		from = length + from
	}
	if from < 0 || from > length {
		return string(runes)
	}
	if len(parsed) == 3 {
		length = int(m.toNumber(parsed[2]))
	}
	var to int
	if length < 0 {
		length = len(runes) + length
		to = length
	} else {
		to = from + length
	}
	if to > len(runes) {
		to = len(runes)
	}
	return string(runes[from:to])
}

func (m *machine) concat(values any) any {
	if isString(values) {
		return values
	}
	var b strings.Builder
	for _, v := range values.([]any) {
		s := toString(v)
		m.chargeBytes(len(s)) // before the copy: the budget bounds what is built
		b.WriteString(s)
	}
	return strings.TrimSpace(b.String())
}

func (m *machine) sum(values []any) any {
	m.charge(len(values))
	s := float64(0)
	for _, n := range values {
		s += m.toNumber(n)
	}
	return s
}

func (m *machine) numbers(values []any) []float64 {
	m.charge(len(values))
	out := make([]float64, len(values))
	for i, n := range values {
		out[i] = m.toNumber(n)
	}
	return out
}

func (m *machine) minus(values []any) any {
	n := m.numbers(values)
	s := n[0]
	for _, x := range n[1:] {
		s -= x
	}
	return s
}

func (m *machine) mult(values []any) any {
	m.charge(len(values))
	s := float64(1)
	for _, n := range values {
		s *= m.toNumber(n)
	}
	return s
}

func (m *machine) div(values []any) any {
	n := m.numbers(values)
	s := n[0]
	for _, x := range n[1:] {
		s /= x
	}
	return s
}

func at(values []any, i int) any {
	if i >= 0 && i < len(values) {
		return values[i]
	}
	return undefined{}
}

func (m *machine) numberForLess(v any) float64 {
	switch t := v.(type) {
	case nil:
		return 0
	case float64:
		return t
	case bool:
		if t {
			return 1
		}
		return 0
	case string:
		m.chargeBytes(len(t))
		// The library means to accept out-of-range numbers too, but compares the *NumError
		// with strconv.ErrRange, so they are NaN there and here.
		if n, err := strconv.ParseFloat(t, 64); err == nil {
			return n
		}
	}
	return math.NaN()
}

func (m *machine) less(a, b any) bool {
	sa, okA := a.(string)
	sb, okB := b.(string)
	if okA && okB {
		m.chargeBytes(len(sa) + len(sb))
		return sb > sa
	}
	return m.numberForLess(b) > m.numberForLess(a)
}

func (m *machine) hardEquals(a, b any) bool {
	if reflect.ValueOf(a).Kind() != reflect.ValueOf(b).Kind() {
		return false
	}
	return m.equals(a, b)
}

func (m *machine) equals(a, b any) bool {
	if a == nil || b == nil {
		return a == b
	}
	if isNumber(a) {
		return m.toNumber(a) == m.toNumber(b)
	}
	if x, ok := a.(bool); ok {
		y, ok := b.(bool)
		return ok && x == y
	}
	sa, sb := toString(a), toString(b)
	m.chargeBytes(len(sa) + len(sb))
	return sa == sb
}
