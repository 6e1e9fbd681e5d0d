//! Executes parse trees against a value, following Go's `text/template`
//! evaluation rules: field/method resolution, argument conversion against
//! Go parameter types, pipelines, variables and their scopes, control
//! structures, and Go's error messages with their location and context.

use super::Template;
use super::ast::{Arg, Branch, Command, List, Node, Pipe, TemplateCall};
use super::builtins;
use super::error::TemplateError;
use super::gofmt;
use super::gotime;
use super::value::{IntKind, Method, Param, Value};

/// Template invocations (and nested control structures) may nest this
/// deep; recursive templates beyond it fail instead of exhausting the stack.
pub const MAX_EXEC_DEPTH: usize = 100;

/// Bound on evaluation steps, so a template such as `{{range 1000000000}}`
/// fails instead of running for hours.
pub const MAX_STEPS: u64 = 20_000_000;

/// Bound on output size.
pub const MAX_OUTPUT: usize = 64 << 20;

/// The node execution is at, for error context (Go's `state.at`).
#[derive(Clone, Copy)]
enum At<'t> {
    Node(&'t Node),
    Pipe(&'t Pipe),
    Cmd(&'t Command),
    Arg(&'t Arg),
}

impl At<'_> {
    fn pos(&self) -> usize {
        match self {
            At::Node(n) => match n {
                Node::Text(_) => 0,
                Node::Action(p) => p.pos,
                Node::If(b) | Node::Range(b) | Node::With(b) => b.pos,
                Node::Template(t) => t.pos,
                Node::Break { pos } | Node::Continue { pos } => *pos,
            },
            At::Pipe(p) => p.pos,
            At::Cmd(c) => c.pos,
            At::Arg(a) => a.pos(),
        }
    }

    fn context(&self) -> String {
        match self {
            At::Node(n) => n.to_string(),
            At::Pipe(p) => p.to_string(),
            At::Cmd(c) => c.to_string(),
            At::Arg(a) => a.to_string(),
        }
    }
}

/// Why a walk stopped early.
pub enum Interrupt {
    Break,
    Continue,
    Error(TemplateError),
}

impl From<TemplateError> for Interrupt {
    fn from(e: TemplateError) -> Interrupt {
        Interrupt::Error(e)
    }
}

type EResult<T> = Result<T, TemplateError>;
type WResult = Result<(), Interrupt>;

pub struct State<'t> {
    tmpl: &'t Template,
    name: &'t str,
    out: String,
    vars: Vec<(String, Value)>,
    depth: usize,
    steps: u64,
    at: Option<At<'t>>,
}

/// Executes the template named `name` of `tmpl` with `data` as dot.
pub fn execute(tmpl: &Template, name: &str, data: &Value) -> EResult<String> {
    let Some((name, root)) = tmpl.trees.get_key_value(name) else {
        return Err(TemplateError::execute(format!(
            "template: no template {} associated with template {}",
            gofmt::quote(name),
            gofmt::quote(&tmpl.name)
        )));
    };
    let mut state = State {
        tmpl,
        name,
        out: String::new(),
        vars: vec![("$".to_string(), data.clone())],
        depth: 0,
        steps: 0,
        at: None,
    };
    match state.walk_list(data, root) {
        Ok(()) => Ok(state.out),
        Err(Interrupt::Error(e)) => Err(e),
        // The parser only accepts break/continue inside range.
        Err(_) => Err(TemplateError::execute(
            "template: break or continue outside range",
        )),
    }
}

/// A pipeline's running value: absent before the first command.
type Final = Option<Value>;

impl<'t> State<'t> {
    fn at(&mut self, at: At<'t>) {
        self.at = Some(at);
    }

    fn errorf(&self, msg: impl std::fmt::Display) -> TemplateError {
        match self.at {
            None => TemplateError::execute(format!("template: {}: {msg}", self.name)),
            Some(at) => {
                let pos = at.pos().min(self.tmpl.text.len());
                let before = self.tmpl.text.get(..pos).unwrap_or("");
                let line = 1 + before.matches('\n').count();
                let col = match before.rfind('\n') {
                    Some(nl) => pos - (nl + 1),
                    None => pos,
                };
                TemplateError::execute(format!(
                    "template: {}:{}:{}: executing {} at <{}>: {msg}",
                    self.tmpl.name,
                    line,
                    col,
                    gofmt::quote(self.name),
                    at.context()
                ))
            }
        }
    }

    fn step(&mut self) -> EResult<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(self.errorf(format!("execution exceeded {MAX_STEPS} steps")));
        }
        if self.out.len() > MAX_OUTPUT {
            return Err(self.errorf(format!("output exceeded {MAX_OUTPUT} bytes")));
        }
        Ok(())
    }

    // ---- variables -------------------------------------------------------

    fn var_value(&self, name: &str) -> EResult<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => Err(self.errorf(format!("undefined variable: {name}"))),
        }
    }

    fn set_var(&mut self, name: &str, value: Value) -> EResult<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = value;
                Ok(())
            }
            None => Err(self.errorf(format!("undefined variable: {name}"))),
        }
    }

    fn set_top_var(&mut self, n: usize, value: Value) {
        let len = self.vars.len();
        if n <= len {
            self.vars[len - n].1 = value;
        }
    }

    // ---- walking ---------------------------------------------------------

    fn walk_list(&mut self, dot: &Value, list: &'t List) -> WResult {
        for node in list {
            self.walk(dot, node)?;
        }
        Ok(())
    }

    /// A nested walk (control structure body or template call).
    fn nested(&mut self, f: impl FnOnce(&mut Self) -> WResult) -> WResult {
        if self.depth >= MAX_EXEC_DEPTH {
            return Err(self
                .errorf(format!(
                    "exceeded maximum template depth ({MAX_EXEC_DEPTH})"
                ))
                .into());
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn walk(&mut self, dot: &Value, node: &'t Node) -> WResult {
        self.at(At::Node(node));
        self.step()?;
        match node {
            Node::Text(t) => {
                self.out.push_str(t);
                Ok(())
            }
            Node::Action(pipe) => {
                let val = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.print_value(node, &val);
                }
                Ok(())
            }
            Node::If(b) => self.nested(|s| s.walk_if_or_with(false, dot, b)),
            Node::With(b) => self.nested(|s| s.walk_if_or_with(true, dot, b)),
            Node::Range(b) => self.nested(|s| s.walk_range(dot, node, b)),
            Node::Template(t) => self.nested(|s| s.walk_template(dot, node, t)),
            Node::Break { .. } => Err(Interrupt::Break),
            Node::Continue { .. } => Err(Interrupt::Continue),
        }
    }

    fn walk_if_or_with(&mut self, is_with: bool, dot: &Value, b: &'t Branch) -> WResult {
        let mark = self.vars.len();
        let result = (|| {
            let val = self.eval_pipeline(dot, &b.pipe)?;
            if val.is_true() {
                if is_with {
                    self.walk_list(&val, &b.list)
                } else {
                    self.walk_list(dot, &b.list)
                }
            } else if let Some(else_list) = &b.else_list {
                self.walk_list(dot, else_list)
            } else {
                Ok(())
            }
        })();
        self.vars.truncate(mark);
        result
    }

    fn walk_range(&mut self, dot: &Value, node: &'t Node, r: &'t Branch) -> WResult {
        self.at(At::Node(node));
        let outer_mark = self.vars.len();
        let result = self.walk_range_inner(dot, r);
        self.vars.truncate(outer_mark);
        match result {
            Err(Interrupt::Break) => Ok(()),
            other => other,
        }
    }

    fn walk_range_inner(&mut self, dot: &Value, r: &'t Branch) -> WResult {
        let val = self.eval_pipeline(dot, &r.pipe)?;
        let mark = self.vars.len();
        let decls = r.pipe.decl.len();
        let mut ran = false;
        match &val {
            Value::Int(..) | Value::Uint(..) | Value::Enum(..) | Value::Duration(_) => {
                if decls > 1 {
                    return Err(self
                        .errorf(format!(
                            "can't use {} to iterate over more than one variable",
                            gofmt::sprint(std::slice::from_ref(&val))
                        ))
                        .into());
                }
                let n: u64 = match &val {
                    Value::Uint(n, _) => *n,
                    other => other.as_i64().unwrap_or(0).max(0) as u64,
                };
                for i in 0..n {
                    ran = true;
                    let elem = match &val {
                        Value::Int(_, k) => Value::Int(i as i64, *k),
                        Value::Uint(_, k) => Value::Uint(i, *k),
                        Value::Enum(_, e) => Value::Enum(i as i64, e.clone()),
                        _ => Value::Duration(i as i64),
                    };
                    if self.one_iteration(r, mark, Value::Invalid, elem)? {
                        return Ok(());
                    }
                }
            }
            Value::List(list) => {
                for (i, item) in list.items.iter().enumerate() {
                    ran = true;
                    if self.one_iteration(r, mark, Value::int(i as i64), item.clone())? {
                        return Ok(());
                    }
                }
            }
            Value::Map(map) => {
                for (k, item) in map.entries.iter() {
                    ran = true;
                    if self.one_iteration(r, mark, Value::string(k.as_str()), item.clone())? {
                        return Ok(());
                    }
                }
            }
            // A nil map and the like: nothing to iterate.
            Value::Invalid | Value::Nil => {}
            other => {
                return Err(self
                    .errorf(format!(
                        "range can't iterate over {}",
                        gofmt::sprint(std::slice::from_ref(other))
                    ))
                    .into());
            }
        }
        if !ran && let Some(else_list) = &r.else_list {
            return self.walk_list(dot, else_list);
        }
        Ok(())
    }

    /// Runs the range body once. Returns true when the body hit `break`.
    fn one_iteration(
        &mut self,
        r: &'t Branch,
        mark: usize,
        index: Value,
        elem: Value,
    ) -> Result<bool, Interrupt> {
        self.step()?;
        let decl = &r.pipe.decl;
        if !decl.is_empty() {
            if r.pipe.is_assign {
                if decl.len() > 1 {
                    self.set_var(&decl[0], index.clone())?;
                } else {
                    self.set_var(&decl[0], elem.clone())?;
                }
            } else {
                self.set_top_var(1, elem.clone());
            }
        }
        if decl.len() > 1 {
            if r.pipe.is_assign {
                self.set_var(&decl[1], elem.clone())?;
            } else {
                self.set_top_var(2, index);
            }
        }
        let result = self.walk_list(&elem, &r.list);
        self.vars.truncate(mark);
        match result {
            Ok(()) | Err(Interrupt::Continue) => Ok(false),
            Err(Interrupt::Break) => Ok(true),
            Err(e) => Err(e),
        }
    }

    fn walk_template(&mut self, dot: &Value, node: &'t Node, t: &'t TemplateCall) -> WResult {
        self.at(At::Node(node));
        let Some((name, tree)) = self.tmpl.trees.get_key_value(&t.name) else {
            return Err(self
                .errorf(format!("template {} not defined", gofmt::quote(&t.name)))
                .into());
        };
        // Without a pipeline the called template gets no data.
        let new_dot = match &t.pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Value::Invalid,
        };
        // No dynamic scoping: the called template sees only `$`.
        let saved_vars =
            std::mem::replace(&mut self.vars, vec![("$".to_string(), new_dot.clone())]);
        let saved_name = std::mem::replace(&mut self.name, name.as_str());
        let result = self.walk_list(&new_dot, tree);
        self.vars = saved_vars;
        self.name = saved_name;
        result
    }

    fn print_value(&mut self, node: &'t Node, val: &Value) {
        self.at(At::Node(node));
        if matches!(val, Value::Invalid) {
            self.out.push_str("<no value>");
            return;
        }
        self.out.push_str(&gofmt::sprint_printable(val));
    }

    // ---- evaluation ------------------------------------------------------

    fn eval_pipeline(&mut self, dot: &Value, pipe: &'t Pipe) -> EResult<Value> {
        self.at(At::Pipe(pipe));
        let mut value: Final = None;
        for cmd in &pipe.cmds {
            let mut v = self.eval_command(dot, cmd, value.take())?;
            // A nil interface{} result is dug into: it becomes "no value".
            if matches!(v, Value::Nil) {
                v = Value::Invalid;
            }
            value = Some(v);
        }
        let value = value.unwrap_or(Value::Invalid);
        for var in &pipe.decl {
            if pipe.is_assign {
                self.set_var(var, value.clone())?;
            } else {
                self.vars.push((var.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], final_: &Final) -> EResult<()> {
        if args.len() > 1 || final_.is_some() {
            return Err(self.errorf(format!(
                "can't give argument to non-function {}",
                args.first().map(|a| a.to_string()).unwrap_or_default()
            )));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Value, cmd: &'t Command, final_: Final) -> EResult<Value> {
        self.step()?;
        let Some(first) = cmd.args.first() else {
            return Err(self.errorf("empty command"));
        };
        match first {
            Arg::Field { idents, .. } => {
                self.at(At::Arg(first));
                return self.eval_field_chain(
                    dot,
                    dot.clone(),
                    At::Arg(first),
                    idents,
                    &cmd.args,
                    final_,
                );
            }
            Arg::Chain { .. } => return self.eval_chain(dot, first, &cmd.args, final_),
            Arg::Identifier { name, .. } => {
                self.at(At::Arg(first));
                return self.eval_function(dot, name, At::Cmd(cmd), &cmd.args, final_);
            }
            Arg::Pipe(p) => {
                self.not_a_function(&cmd.args, &final_)?;
                return self.eval_pipeline(dot, p);
            }
            Arg::Variable { .. } => return self.eval_variable(dot, first, &cmd.args, final_),
            _ => {}
        }
        self.at(At::Arg(first));
        self.not_a_function(&cmd.args, &final_)?;
        match first {
            Arg::Bool { value, .. } => Ok(Value::Bool(*value)),
            Arg::Dot { .. } => Ok(dot.clone()),
            Arg::Nil { .. } => Err(self.errorf("nil is not a command")),
            Arg::Number { .. } => self.ideal_constant(first),
            Arg::String { text, .. } => Ok(Value::string(text.as_str())),
            other => Err(self.errorf(format!(
                "can't evaluate command {}",
                gofmt::quote(&other.to_string())
            ))),
        }
    }

    /// A number literal where no parameter type gives context: Go's rules
    /// make it an int, or a float when written like one.
    fn ideal_constant(&mut self, arg: &'t Arg) -> EResult<Value> {
        self.at(At::Arg(arg));
        let Arg::Number { num, .. } = arg else {
            return Ok(Value::Invalid);
        };
        let text = &num.text;
        let is_hex_int = text.len() > 2
            && text.starts_with('0')
            && matches!(text.as_bytes()[1], b'x' | b'X')
            && !text.contains(['p', 'P']);
        let is_rune = text.starts_with('\'');
        if num.is_float && !is_hex_int && !is_rune && text.contains(['.', 'e', 'E', 'p', 'P']) {
            return Ok(Value::float(num.float));
        }
        if num.is_int {
            return Ok(Value::int(num.int));
        }
        if num.is_uint {
            return Err(self.errorf(format!("{text} overflows int")));
        }
        Ok(Value::Invalid)
    }

    fn eval_chain(
        &mut self,
        dot: &Value,
        chain: &'t Arg,
        args: &'t [Arg],
        final_: Final,
    ) -> EResult<Value> {
        self.at(At::Arg(chain));
        let Arg::Chain { node, fields, .. } = chain else {
            return Ok(Value::Invalid);
        };
        if matches!(node.as_ref(), Arg::Nil { .. }) {
            return Err(self.errorf(format!("indirection through explicit nil in {chain}")));
        }
        let base = self.eval_arg_untyped(dot, node)?;
        self.eval_field_chain(dot, base, At::Arg(chain), fields, args, final_)
    }

    /// `evalArg` with no parameter type (the base of a chain).
    fn eval_arg_untyped(&mut self, dot: &Value, arg: &'t Arg) -> EResult<Value> {
        self.at(At::Arg(arg));
        match arg {
            Arg::Dot { .. } => Ok(dot.clone()),
            Arg::Field { idents, .. } => self.eval_field_chain(
                dot,
                dot.clone(),
                At::Arg(arg),
                idents,
                std::slice::from_ref(arg),
                None,
            ),
            Arg::Variable { .. } => self.eval_variable(dot, arg, &[], None),
            Arg::Pipe(p) => self.eval_pipeline(dot, p),
            Arg::Identifier { name, .. } => self.eval_function(dot, name, At::Arg(arg), &[], None),
            Arg::Chain { .. } => self.eval_chain(dot, arg, &[], None),
            other => Err(self.errorf(format!("can't handle {other} as a chain base"))),
        }
    }

    fn eval_variable(
        &mut self,
        dot: &Value,
        var: &'t Arg,
        args: &'t [Arg],
        final_: Final,
    ) -> EResult<Value> {
        self.at(At::Arg(var));
        let Arg::Variable { idents, .. } = var else {
            return Ok(Value::Invalid);
        };
        let value = self.var_value(&idents[0])?;
        if idents.len() == 1 {
            self.not_a_function(args, &final_)?;
            return Ok(value);
        }
        self.eval_field_chain(dot, value, At::Arg(var), &idents[1..], args, final_)
    }

    fn eval_field_chain(
        &mut self,
        dot: &Value,
        mut receiver: Value,
        node: At<'t>,
        idents: &[String],
        args: &'t [Arg],
        final_: Final,
    ) -> EResult<Value> {
        let Some((last, init)) = idents.split_last() else {
            return Ok(receiver);
        };
        for name in init {
            receiver = self.eval_field(dot, name, node, &[], None, receiver)?;
        }
        self.eval_field(dot, last, node, args, final_, receiver)
    }

    fn eval_field(
        &mut self,
        dot: &Value,
        name: &str,
        node: At<'t>,
        args: &'t [Arg],
        final_: Final,
        receiver: Value,
    ) -> EResult<Value> {
        if matches!(receiver, Value::Invalid) {
            return Ok(Value::Invalid);
        }
        if matches!(receiver, Value::Nil) {
            return Err(self.errorf(format!("nil pointer evaluating interface {{}}.{name}")));
        }
        if let Some(method) = method_of(&receiver, name) {
            return self.eval_call(dot, &method, node, name, args, final_, &receiver);
        }
        let has_args = args.len() > 1 || final_.is_some();
        match &receiver {
            Value::Object(o) => {
                if let Some(i) = o.ty.field_index(name) {
                    if has_args {
                        return Err(self.errorf(format!(
                            "{name} has arguments but cannot be invoked as function"
                        )));
                    }
                    return Ok(o.fields[i].clone());
                }
            }
            Value::Map(m) => {
                if has_args {
                    return Err(self.errorf(format!("{name} is not a method but has arguments")));
                }
                return Ok(m.entries.get(name).cloned().unwrap_or(Value::Invalid));
            }
            Value::NilPtr(t) if t.field_index(name).is_some() => {
                return Err(self.errorf(format!("nil pointer evaluating {}.{name}", t.name)));
            }
            _ => {}
        }
        Err(self.errorf(format!(
            "can't evaluate field {name} in type {}",
            receiver.type_name_or_nil()
        )))
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        name: &str,
        node: At<'t>,
        args: &'t [Arg],
        final_: Final,
    ) -> EResult<Value> {
        match name {
            "and" | "or" => self.eval_and_or(dot, name == "or", args, final_),
            "call" => {
                // Errors name the callee by its source text.
                let callee = match (args.get(1), &final_) {
                    (Some(a), _) => a.to_string(),
                    (None, Some(v)) => gofmt::sprint(std::slice::from_ref(v)),
                    (None, None) => String::new(),
                };
                let method = builtins::call_method(callee);
                self.eval_call(dot, &method, node, name, args, final_, &Value::Invalid)
            }
            _ => match builtins::builtin(name) {
                Some(method) => {
                    self.eval_call(dot, &method, node, name, args, final_, &Value::Invalid)
                }
                None => {
                    Err(self.errorf(format!("{} is not a defined function", gofmt::quote(name))))
                }
            },
        }
    }

    /// `and`/`or` evaluate their arguments lazily and return the deciding
    /// one.
    fn eval_and_or(
        &mut self,
        dot: &Value,
        is_or: bool,
        args: &'t [Arg],
        final_: Final,
    ) -> EResult<Value> {
        let name = if is_or { "or" } else { "and" };
        let args = if args.is_empty() { args } else { &args[1..] };
        let num_in = args.len() + usize::from(final_.is_some());
        if num_in < 1 {
            return Err(self.errorf(format!(
                "wrong number of args for {name}: want at least 1 got {}",
                args.len()
            )));
        }
        let mut v = Value::Invalid;
        for arg in args {
            v = self.eval_arg(dot, &Param::Reflect, arg)?;
            if v.is_true() == is_or {
                return Ok(v);
            }
        }
        if let Some(f) = final_ {
            v = f;
        }
        Ok(v)
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_call(
        &mut self,
        dot: &Value,
        method: &Method,
        node: At<'t>,
        name: &str,
        args: &'t [Arg],
        final_: Final,
        receiver: &Value,
    ) -> EResult<Value> {
        let args = if args.is_empty() { args } else { &args[1..] };
        let num_in = args.len() + usize::from(final_.is_some());
        let num_fixed = if method.variadic.is_some() {
            let fixed = method.params.len();
            if num_in < fixed {
                return Err(self.errorf(format!(
                    "wrong number of args for {name}: want at least {fixed} got {}",
                    args.len()
                )));
            }
            fixed
        } else {
            if num_in != method.params.len() {
                return Err(self.errorf(format!(
                    "wrong number of args for {name}: want {} got {num_in}",
                    method.params.len()
                )));
            }
            args.len()
        };
        let mut argv = Vec::with_capacity(num_in);
        let mut i = 0;
        while i < num_fixed && i < args.len() {
            argv.push(self.eval_arg(dot, &method.params[i], &args[i])?);
            i += 1;
        }
        if let Some(variadic) = &method.variadic {
            while i < args.len() {
                argv.push(self.eval_arg(dot, variadic, &args[i])?);
                i += 1;
            }
        }
        if let Some(f) = final_ {
            let param = match &method.variadic {
                Some(v) if num_in > num_fixed => v.clone(),
                _ => method.params[num_in - 1].clone(),
            };
            argv.push(self.validate_type(f, &param)?);
        }
        match (method.func)(receiver, &argv) {
            Ok(v) => Ok(v),
            Err(e) => {
                self.at(node);
                Err(self.errorf(format!("error calling {name}: {e}")))
            }
        }
    }

    /// Checks that a computed value fits a parameter of Go type `param`.
    fn validate_type(&self, value: Value, param: &Param) -> EResult<Value> {
        match param {
            Param::Reflect => return Ok(value),
            Param::Any => {
                return Ok(if matches!(value, Value::Invalid) {
                    Value::Nil
                } else {
                    value
                });
            }
            _ => {}
        }
        if matches!(value, Value::Invalid) {
            return Err(self.errorf(format!("invalid value; expected {}", param.go_name())));
        }
        let expected = param.go_name();
        let got = value
            .type_name()
            .unwrap_or_else(|| "interface {}".to_string());
        if got == expected {
            return Ok(value);
        }
        Err(self.errorf(format!(
            "wrong type for value; expected {expected}; got {got}"
        )))
    }

    fn eval_arg(&mut self, dot: &Value, param: &Param, arg: &'t Arg) -> EResult<Value> {
        self.at(At::Arg(arg));
        match arg {
            Arg::Dot { .. } => return self.validate_type(dot.clone(), param),
            Arg::Nil { .. } => {
                return match param {
                    Param::Any => Ok(Value::Nil),
                    Param::Reflect => Ok(Value::Invalid),
                    _ => Err(self.errorf(format!("cannot assign nil to {}", param.go_name()))),
                };
            }
            Arg::Field { idents, .. } => {
                let v = self.eval_field_chain(
                    dot,
                    dot.clone(),
                    At::Arg(arg),
                    idents,
                    std::slice::from_ref(arg),
                    None,
                )?;
                return self.validate_type(v, param);
            }
            Arg::Variable { .. } => {
                let v = self.eval_variable(dot, arg, &[], None)?;
                return self.validate_type(v, param);
            }
            Arg::Pipe(p) => {
                let v = self.eval_pipeline(dot, p)?;
                return self.validate_type(v, param);
            }
            Arg::Identifier { name, .. } => {
                let v = self.eval_function(dot, name, At::Arg(arg), &[], None)?;
                return self.validate_type(v, param);
            }
            Arg::Chain { .. } => {
                let v = self.eval_chain(dot, arg, &[], None)?;
                return self.validate_type(v, param);
            }
            _ => {}
        }
        // A literal: its meaning depends on the parameter type.
        match param {
            Param::Any | Param::Reflect => self.eval_empty_interface(dot, arg),
            Param::Bool => match arg {
                Arg::Bool { value, .. } => Ok(Value::Bool(*value)),
                _ => Err(self.errorf(format!("expected bool; found {arg}"))),
            },
            Param::String => match arg {
                Arg::String { text, .. } => Ok(Value::string(text.as_str())),
                _ => Err(self.errorf(format!("expected string; found {arg}"))),
            },
            Param::Int(_) | Param::Duration | Param::Enum(_) => match arg {
                Arg::Number { num, .. } if num.is_int => Ok(match param {
                    Param::Int(k) => Value::Int(truncate_int(num.int, *k), *k),
                    Param::Duration => Value::Duration(num.int),
                    Param::Enum(e) => Value::Enum(truncate_int(num.int, e.kind), e.clone()),
                    _ => Value::int(num.int),
                }),
                _ => Err(self.errorf(format!("expected integer; found {arg}"))),
            },
            Param::Float(k) => match arg {
                Arg::Number { num, .. } if num.is_float => Ok(Value::Float(num.float, *k)),
                _ => Err(self.errorf(format!("expected float; found {arg}"))),
            },
            Param::Time => {
                Err(self.errorf(format!("can't handle {arg} for arg of type time.Time")))
            }
        }
    }

    fn eval_empty_interface(&mut self, dot: &Value, arg: &'t Arg) -> EResult<Value> {
        self.at(At::Arg(arg));
        match arg {
            Arg::Bool { value, .. } => Ok(Value::Bool(*value)),
            Arg::Dot { .. } => Ok(dot.clone()),
            Arg::Number { .. } => self.ideal_constant(arg),
            Arg::String { text, .. } => Ok(Value::string(text.as_str())),
            other => Err(self.errorf(format!(
                "can't handle assignment of {other} to empty interface argument"
            ))),
        }
    }
}

/// Go's `SetInt` on a narrower integer type wraps silently.
fn truncate_int(n: i64, kind: IntKind) -> i64 {
    match kind {
        IntKind::Int32 => n as i32 as i64,
        _ => n,
    }
}

/// The method `name` of a value, if its type has one.
fn method_of(v: &Value, name: &str) -> Option<Method> {
    match v {
        Value::Object(o) => o.ty.method(name).cloned(),
        Value::NilPtr(t) => t.method(name).cloned(),
        Value::Time(_) => gotime::time_method(name),
        Value::Duration(_) => gotime::duration_method(name),
        // Proto enums (not time.Month or time.Weekday) have Number().
        Value::Enum(_, e) => builtins::enum_method(name, !e.name.starts_with("time.")),
        _ => None,
    }
}
