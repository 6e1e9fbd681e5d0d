//! Recursive-descent parser from tokens to parse trees, following the
//! grammar of Go's `text/template/parse` (actions, pipelines, declarations,
//! control structures, `define`/`block`/`template`) with its error texts.

use std::collections::HashMap;

use super::ast::{Arg, Branch, Command, List, Node, Pipe, TemplateCall};
use super::error::TemplateError;
use super::lexer::{Token, TokenKind, lex};
use super::literal::{parse_number, unquote};

/// Parenthesised expressions and control structures may nest this deep.
/// (Go allows deeper paren nesting; templates never come close, and the
/// bound keeps parsing and execution well inside the thread's stack.)
pub const MAX_NESTING: usize = 50;

/// Names the parser accepts as functions: Go's builtins.
pub const BUILTINS: &[&str] = &[
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
];

type PResult<T> = Result<T, TemplateError>;

/// What a control keyword closes or continues.
enum Item {
    Node(Node),
    End,
    Else,
}

impl Item {
    fn describe(&self) -> &'static str {
        match self {
            Item::End => "{{end}}",
            Item::Else => "{{else}}",
            Item::Node(_) => "node",
        }
    }
}

struct Parser<'a> {
    parse_name: &'a str,
    tokens: Vec<Token>,
    idx: usize,
    /// The furthest token read: Go reports parse errors on its line.
    furthest: usize,
    vars: Vec<String>,
    range_depth: usize,
    nesting: usize,
    action_line: usize,
    trees: HashMap<String, List>,
}

/// Parses `text` into named trees: the top-level template under `name`
/// plus every `define`d and `block` template.
pub fn parse(name: &str, text: &str) -> PResult<HashMap<String, List>> {
    let mut p = Parser {
        parse_name: name,
        tokens: lex(text),
        idx: 0,
        furthest: 0,
        vars: vec!["$".to_string()],
        range_depth: 0,
        nesting: 0,
        action_line: 0,
        trees: HashMap::new(),
    };
    let root = p.parse_top()?;
    p.add(name, root)?;
    Ok(p.trees)
}

/// Go's `parse.IsEmptyTree`: only whitespace text.
fn is_empty_tree(list: &List) -> bool {
    list.iter()
        .all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()))
}

impl<'a> Parser<'a> {
    fn errorf(&self, msg: impl std::fmt::Display) -> TemplateError {
        let line = self.tokens.get(self.furthest).map(|t| t.line).unwrap_or(1);
        TemplateError::parse(format!("template: {}:{}: {}", self.parse_name, line, msg))
    }

    fn next(&mut self) -> Token {
        let last = self.tokens.len().saturating_sub(1);
        let i = self.idx.min(last);
        if self.idx <= last {
            self.idx += 1;
        }
        self.furthest = self.furthest.max(i);
        self.tokens.get(i).cloned().unwrap_or(Token {
            kind: TokenKind::Eof,
            pos: 0,
            val: String::new(),
            line: 1,
        })
    }

    fn backup(&mut self) {
        self.idx = self.idx.saturating_sub(1);
    }

    fn peek(&mut self) -> Token {
        let t = self.next();
        self.backup();
        t
    }

    fn next_non_space(&mut self) -> Token {
        loop {
            let t = self.next();
            if t.kind != TokenKind::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Token {
        let t = self.next_non_space();
        self.backup();
        t
    }

    fn expect(&mut self, kind: TokenKind, context: &str) -> PResult<Token> {
        let t = self.next_non_space();
        if t.kind != kind {
            return Err(self.unexpected(&t, context));
        }
        Ok(t)
    }

    fn unexpected(&self, token: &Token, context: &str) -> TemplateError {
        if token.kind == TokenKind::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != token.line {
                extra = format!(
                    " in action started at {}:{}",
                    self.parse_name, self.action_line
                );
                if token.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.errorf(format!("{token}{extra}"));
        }
        self.errorf(format!("unexpected {token} in {context}"))
    }

    fn add(&mut self, name: &str, root: List) -> PResult<()> {
        match self.trees.get(name) {
            Some(existing) if !is_empty_tree(existing) => {
                if !is_empty_tree(&root) {
                    return Err(self.errorf(format!(
                        "template: multiple definition of template {}",
                        super::gofmt::quote(name)
                    )));
                }
                Ok(())
            }
            _ => {
                self.trees.insert(name.to_string(), root);
                Ok(())
            }
        }
    }

    fn enter(&mut self) -> PResult<()> {
        if self.nesting >= MAX_NESTING {
            return Err(self.errorf("max expression depth exceeded"));
        }
        self.nesting += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting = self.nesting.saturating_sub(1);
    }

    fn parse_top(&mut self) -> PResult<List> {
        let mut root = Vec::new();
        while self.peek().kind != TokenKind::Eof {
            if self.peek().kind == TokenKind::LeftDelim {
                let delim_at = self.idx;
                self.next();
                if self.next_non_space().kind == TokenKind::Define {
                    self.parse_definition()?;
                    continue;
                }
                self.idx = delim_at;
            }
            match self.text_or_action()? {
                Item::Node(n) => root.push(n),
                other => return Err(self.errorf(format!("unexpected {}", other.describe()))),
            }
        }
        Ok(root)
    }

    /// Runs `f` as the parse of a separate template (`define`, `block`):
    /// it sees only `$` and no enclosing range.
    fn in_new_tree<T>(&mut self, f: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
        let vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let range_depth = std::mem::replace(&mut self.range_depth, 0);
        let result = f(self);
        self.vars = vars;
        self.range_depth = range_depth;
        result
    }

    fn parse_definition(&mut self) -> PResult<()> {
        const CONTEXT: &str = "define clause";
        self.in_new_tree(|p| {
            let name_tok = p.next_non_space();
            if name_tok.kind != TokenKind::String && name_tok.kind != TokenKind::RawString {
                return Err(p.unexpected(&name_tok, CONTEXT));
            }
            let name = unquote(&name_tok.val).map_err(|e| p.errorf(e))?;
            p.expect(TokenKind::RightDelim, CONTEXT)?;
            let (root, end) = p.item_list()?;
            if !matches!(end, Item::End) {
                return Err(p.errorf(format!("unexpected {} in {CONTEXT}", end.describe())));
            }
            p.add(&name, root)
        })
    }

    fn item_list(&mut self) -> PResult<(List, Item)> {
        let mut list = Vec::new();
        while self.peek_non_space().kind != TokenKind::Eof {
            match self.text_or_action()? {
                Item::Node(n) => list.push(n),
                end => return Ok((list, end)),
            }
        }
        Err(self.errorf("unexpected EOF"))
    }

    fn text_or_action(&mut self) -> PResult<Item> {
        let token = self.next_non_space();
        match token.kind {
            TokenKind::Text => Ok(Item::Node(Node::Text(token.val))),
            TokenKind::LeftDelim => {
                self.action_line = token.line;
                let result = self.action();
                self.action_line = 0;
                result
            }
            _ => Err(self.unexpected(&token, "input")),
        }
    }

    fn action(&mut self) -> PResult<Item> {
        let token = self.next_non_space();
        match token.kind {
            TokenKind::Block => return self.block_control().map(Item::Node),
            TokenKind::Break | TokenKind::Continue => {
                let is_break = token.kind == TokenKind::Break;
                let name = if is_break {
                    "{{break}}"
                } else {
                    "{{continue}}"
                };
                let t = self.next_non_space();
                if t.kind != TokenKind::RightDelim {
                    return Err(self.unexpected(&t, name));
                }
                if self.range_depth == 0 {
                    return Err(self.errorf(format!("{name} outside {{{{range}}}}")));
                }
                return Ok(Item::Node(if is_break {
                    Node::Break { pos: token.pos }
                } else {
                    Node::Continue { pos: token.pos }
                }));
            }
            TokenKind::Else => {
                let peek = self.peek_non_space();
                if peek.kind == TokenKind::If || peek.kind == TokenKind::With {
                    return Ok(Item::Else);
                }
                self.expect(TokenKind::RightDelim, "else")?;
                return Ok(Item::Else);
            }
            TokenKind::End => {
                self.expect(TokenKind::RightDelim, "end")?;
                return Ok(Item::End);
            }
            TokenKind::If => return self.control("if").map(|b| Item::Node(Node::If(b))),
            TokenKind::Range => return self.control("range").map(|b| Item::Node(Node::Range(b))),
            TokenKind::With => return self.control("with").map(|b| Item::Node(Node::With(b))),
            TokenKind::Template => return self.template_control().map(Item::Node),
            _ => {}
        }
        self.backup();
        let pipe = self.pipeline("command", TokenKind::RightDelim)?;
        Ok(Item::Node(Node::Action(pipe)))
    }

    fn control(&mut self, context: &str) -> PResult<Branch> {
        self.enter()?;
        let vars_mark = self.vars.len();
        let result = self.control_inner(context);
        self.vars.truncate(vars_mark);
        self.leave();
        result
    }

    fn control_inner(&mut self, context: &str) -> PResult<Branch> {
        let pipe = self.pipeline(context, TokenKind::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let listed = self.item_list();
        if context == "range" {
            self.range_depth -= 1;
        }
        let (list, next) = listed?;
        let mut else_list = None;
        if let Item::Else = next {
            let peek = self.peek().kind;
            if context == "if" && peek == TokenKind::If {
                self.next();
                else_list = Some(vec![Node::If(self.control("if")?)]);
            } else if context == "with" && peek == TokenKind::With {
                self.next();
                else_list = Some(vec![Node::With(self.control("with")?)]);
            } else {
                let (list, next) = self.item_list()?;
                if !matches!(next, Item::End) {
                    return Err(self.errorf(format!("expected end; found {}", next.describe())));
                }
                else_list = Some(list);
            }
        }
        Ok(Branch {
            pos: pipe.pos,
            pipe,
            list,
            else_list,
        })
    }

    fn template_name(&mut self, token: &Token, context: &str) -> PResult<String> {
        match token.kind {
            TokenKind::String | TokenKind::RawString => {
                unquote(&token.val).map_err(|e| self.errorf(e))
            }
            _ => Err(self.unexpected(token, context)),
        }
    }

    fn block_control(&mut self) -> PResult<Node> {
        const CONTEXT: &str = "block clause";
        let token = self.next_non_space();
        let name = self.template_name(&token, CONTEXT)?;
        let pipe = self.pipeline(CONTEXT, TokenKind::RightDelim)?;
        self.enter()?;
        let body = self.in_new_tree(|p| p.item_list());
        self.leave();
        let (root, end) = body?;
        if !matches!(end, Item::End) {
            return Err(self.errorf(format!("unexpected {} in {CONTEXT}", end.describe())));
        }
        self.add(&name, root)?;
        Ok(Node::Template(TemplateCall {
            pos: token.pos,
            name,
            pipe: Some(pipe),
        }))
    }

    fn template_control(&mut self) -> PResult<Node> {
        const CONTEXT: &str = "template clause";
        let token = self.next_non_space();
        let name = self.template_name(&token, CONTEXT)?;
        let mut pipe = None;
        if self.next_non_space().kind != TokenKind::RightDelim {
            self.backup();
            pipe = Some(self.pipeline(CONTEXT, TokenKind::RightDelim)?);
        }
        Ok(Node::Template(TemplateCall {
            pos: token.pos,
            name,
            pipe,
        }))
    }

    fn pipeline(&mut self, context: &str, end: TokenKind) -> PResult<Pipe> {
        let start = self.peek_non_space();
        let mut pipe = Pipe {
            pos: start.pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        loop {
            let v = self.peek_non_space();
            if v.kind != TokenKind::Variable {
                break;
            }
            let v_at = self.idx;
            self.next();
            let next = self.peek_non_space();
            match next.kind {
                TokenKind::Assign | TokenKind::Declare => {
                    pipe.is_assign = next.kind == TokenKind::Assign;
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                }
                TokenKind::Char if next.val == "," => {
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().kind {
                            TokenKind::Variable | TokenKind::RightDelim | TokenKind::RightParen => {
                                continue;
                            }
                            _ => return Err(self.errorf("range can only initialize variables")),
                        }
                    }
                    return Err(self.errorf(format!("too many declarations in {context}")));
                }
                _ => {
                    // Not a declaration: the variable is an operand.
                    self.idx = v_at;
                }
            }
            break;
        }
        loop {
            let token = self.next_non_space();
            if token.kind == end {
                self.check_pipeline(&pipe, context)?;
                return Ok(pipe);
            }
            match token.kind {
                TokenKind::Bool
                | TokenKind::CharConstant
                | TokenKind::Complex
                | TokenKind::Dot
                | TokenKind::Field
                | TokenKind::Identifier
                | TokenKind::Number
                | TokenKind::Nil
                | TokenKind::RawString
                | TokenKind::String
                | TokenKind::Variable
                | TokenKind::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return Err(self.unexpected(&token, context)),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return Err(self.errorf(format!("missing value for {context}")));
        }
        for (i, cmd) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                cmd.args.first(),
                Some(
                    Arg::Bool { .. }
                        | Arg::Dot { .. }
                        | Arg::Nil { .. }
                        | Arg::Number { .. }
                        | Arg::String { .. }
                )
            ) {
                return Err(self.errorf(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                )));
            }
        }
        Ok(())
    }

    fn command(&mut self) -> PResult<Command> {
        let start = self.peek_non_space();
        let mut cmd = Command {
            pos: start.pos,
            args: Vec::new(),
        };
        loop {
            self.peek_non_space();
            if let Some(op) = self.operand()? {
                cmd.args.push(op);
            }
            let token = self.next();
            match token.kind {
                TokenKind::Space => continue,
                TokenKind::RightDelim | TokenKind::RightParen => self.backup(),
                TokenKind::Pipe => {}
                _ => return Err(self.unexpected(&token, "operand")),
            }
            break;
        }
        if cmd.args.is_empty() {
            return Err(self.errorf("empty command"));
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().kind != TokenKind::Field {
            return Ok(Some(node));
        }
        let chain_pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().kind == TokenKind::Field {
            let t = self.next();
            fields.push(t.val.trim_start_matches('.').to_string());
        }
        Ok(Some(match node {
            Arg::Field { mut idents, .. } => {
                idents.extend(fields);
                Arg::Field {
                    pos: chain_pos,
                    idents,
                }
            }
            Arg::Variable { mut idents, .. } => {
                idents.extend(fields);
                Arg::Variable {
                    pos: chain_pos,
                    idents,
                }
            }
            Arg::Bool { .. }
            | Arg::String { .. }
            | Arg::Number { .. }
            | Arg::Nil { .. }
            | Arg::Dot { .. } => {
                return Err(self.errorf(format!(
                    "unexpected . after term {}",
                    super::gofmt::quote(&node.to_string())
                )));
            }
            other => Arg::Chain {
                pos: chain_pos,
                node: Box::new(other),
                fields,
            },
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let token = self.next_non_space();
        let pos = token.pos;
        Ok(Some(match token.kind {
            TokenKind::Identifier => {
                if !BUILTINS.contains(&token.val.as_str()) {
                    return Err(self.errorf(format!(
                        "function {} not defined",
                        super::gofmt::quote(&token.val)
                    )));
                }
                Arg::Identifier {
                    pos,
                    name: token.val,
                }
            }
            TokenKind::Dot => Arg::Dot { pos },
            TokenKind::Nil => Arg::Nil { pos },
            TokenKind::Variable => {
                if !self.vars.contains(&token.val) {
                    return Err(self.errorf(format!(
                        "undefined variable {}",
                        super::gofmt::quote(&token.val)
                    )));
                }
                Arg::Variable {
                    pos,
                    idents: vec![token.val],
                }
            }
            TokenKind::Field => Arg::Field {
                pos,
                idents: vec![token.val.trim_start_matches('.').to_string()],
            },
            TokenKind::Bool => Arg::Bool {
                pos,
                value: token.val == "true",
            },
            TokenKind::CharConstant | TokenKind::Complex | TokenKind::Number => {
                let num = parse_number(
                    &token.val,
                    token.kind == TokenKind::CharConstant,
                    token.kind == TokenKind::Complex,
                )
                .map_err(|e| self.errorf(e))?;
                Arg::Number { pos, num }
            }
            TokenKind::LeftParen => {
                self.enter()?;
                let pipe = self.pipeline("parenthesized pipeline", TokenKind::RightParen);
                self.leave();
                Arg::Pipe(Box::new(pipe?))
            }
            TokenKind::String | TokenKind::RawString => {
                let text = unquote(&token.val).map_err(|e| self.errorf(e))?;
                Arg::String {
                    pos,
                    quoted: token.val,
                    text,
                }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}
