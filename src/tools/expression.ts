/**
 * A safe arithmetic expression evaluator (recursive descent; no `eval`, no `Function`).
 * Grammar:
 *   expr    := term (('+' | '-') term)*
 *   term    := unary (('*' | '/' | '%') unary)*
 *   unary   := ('+' | '-') unary | power
 *   power   := primary ('^' | '**') unary      (right-associative; binds tighter than unary minus on its left)
 *   primary := number | constant | function '(' args ')' | '(' expr ')'
 */

const MAX_LENGTH = 1_000;
const MAX_DEPTH = 64;

const FUNCTIONS = new Map<string, { arity: [number, number]; apply: (...args: number[]) => number }>(Object.entries({
  sqrt: { arity: [1, 1], apply: Math.sqrt },
  abs: { arity: [1, 1], apply: Math.abs },
  round: { arity: [1, 1], apply: Math.round },
  floor: { arity: [1, 1], apply: Math.floor },
  ceil: { arity: [1, 1], apply: Math.ceil },
  sin: { arity: [1, 1], apply: Math.sin },
  cos: { arity: [1, 1], apply: Math.cos },
  tan: { arity: [1, 1], apply: Math.tan },
  ln: { arity: [1, 1], apply: Math.log },
  log: { arity: [1, 1], apply: Math.log10 },
  exp: { arity: [1, 1], apply: Math.exp },
  min: { arity: [1, 64], apply: Math.min },
  max: { arity: [1, 64], apply: Math.max },
}));

// Maps, not object literals: a name like 'constructor' must not find Object.prototype members.
const CONSTANTS = new Map<string, number>([
  ["pi", Math.PI],
  ["e", Math.E],
]);

export class ExpressionError extends Error {
  constructor(message: string, readonly position: number) {
    super(`${message} at position ${position}`);
    this.name = "ExpressionError";
  }
}

type Token =
  | { kind: "number"; value: number; position: number }
  | { kind: "name"; value: string; position: number }
  | { kind: "op"; value: string; position: number }
  | { kind: "end"; position: number };

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let index = 0;
  while (index < source.length) {
    const char = source[index]!;
    if (/\s/.test(char)) {
      index++;
      continue;
    }
    const number = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/.exec(source.slice(index));
    if (number) {
      tokens.push({ kind: "number", value: Number(number[0]), position: index });
      index += number[0].length;
      continue;
    }
    const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(source.slice(index));
    if (name) {
      tokens.push({ kind: "name", value: name[0].toLowerCase(), position: index });
      index += name[0].length;
      continue;
    }
    if (source.startsWith("**", index)) {
      tokens.push({ kind: "op", value: "^", position: index });
      index += 2;
      continue;
    }
    if ("+-*/%^(),".includes(char)) {
      tokens.push({ kind: "op", value: char, position: index });
      index++;
      continue;
    }
    throw new ExpressionError(`Unexpected character '${char}'`, index);
  }
  tokens.push({ kind: "end", position: source.length });
  return tokens;
}

/** Evaluates an arithmetic expression; throws ExpressionError on anything it does not understand. */
export function evaluateExpression(source: string): number {
  if (source.length > MAX_LENGTH) throw new ExpressionError(`Expression longer than ${MAX_LENGTH} characters`, 0);
  const tokens = tokenize(source);
  let index = 0;
  let depth = 0;

  const peek = () => tokens[index]!;
  const next = () => tokens[index++]!;
  const isOp = (value: string) => {
    const token = peek();
    return token.kind === "op" && token.value === value;
  };
  const expect = (value: string) => {
    const token = next();
    if (token.kind !== "op" || token.value !== value) throw new ExpressionError(`Expected '${value}'`, token.position);
  };
  const enter = (position: number) => {
    if (++depth > MAX_DEPTH) throw new ExpressionError("Expression nested too deeply", position);
  };

  function expression(): number {
    let value = term();
    while (isOp("+") || isOp("-")) {
      const op = next();
      const right = term();
      value = op.kind === "op" && op.value === "+" ? value + right : value - right;
    }
    return value;
  }

  function term(): number {
    let value = unary();
    while (isOp("*") || isOp("/") || isOp("%")) {
      const op = next() as { value: string; position: number };
      const right = unary();
      if ((op.value === "/" || op.value === "%") && right === 0) throw new ExpressionError("Division by zero", op.position);
      value = op.value === "*" ? value * right : op.value === "/" ? value / right : value % right;
    }
    return value;
  }

  function unary(): number {
    const token = peek();
    if (isOp("-") || isOp("+")) {
      enter(token.position);
      next();
      const value = unary();
      depth--;
      return token.kind === "op" && token.value === "-" ? -value : value;
    }
    return power();
  }

  function power(): number {
    const base = primary();
    if (isOp("^")) {
      const token = next();
      enter(token.position);
      const exponent = unary();
      depth--;
      return base ** exponent;
    }
    return base;
  }

  function primary(): number {
    const token = next();
    if (token.kind === "number") return token.value;
    if (token.kind === "op" && token.value === "(") {
      enter(token.position);
      const value = expression();
      expect(")");
      depth--;
      return value;
    }
    if (token.kind === "name") {
      const fn = FUNCTIONS.get(token.value);
      if (fn) {
        enter(token.position);
        expect("(");
        const args = [expression()];
        while (isOp(",")) {
          next();
          args.push(expression());
        }
        expect(")");
        depth--;
        const [min, max] = fn.arity;
        if (args.length < min || args.length > max) {
          throw new ExpressionError(`${token.value}() takes ${min === max ? min : `${min}-${max}`} argument(s)`, token.position);
        }
        return fn.apply(...args);
      }
      const constant = CONSTANTS.get(token.value);
      if (constant !== undefined) return constant;
      throw new ExpressionError(`Unknown name '${token.value}'`, token.position);
    }
    if (token.kind === "end") throw new ExpressionError("Unexpected end of expression", token.position);
    throw new ExpressionError(`Unexpected '${token.value}'`, token.position);
  }

  const value = expression();
  const rest = peek();
  if (rest.kind !== "end") throw new ExpressionError("Unexpected input after expression", rest.position);
  if (!Number.isFinite(value)) throw new ExpressionError("Result is not a finite number", 0);
  return value;
}
