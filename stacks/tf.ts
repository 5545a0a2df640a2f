// Small helpers for Terraform expressions CDKTF has no typed form for.
import { Fn, type IResolvable, Op, ref, type TerraformDataSource, type TerraformResource, Token } from './cdk';

type Counted = TerraformResource | TerraformDataSource;

/** `resource[*].attribute`: the list of an attribute over a resource that has `count`. */
export function splat(resource: Counted, attribute: string): string[] {
  return Token.asList(ref(`${resource.fqn}[*].${attribute}`));
}

/** The attribute of the only instance of a resource with `count` 0 or 1, or null when there is none. */
export function only(resource: Counted, attribute: string): string {
  return Token.asString(Fn.one(splat(resource, attribute)));
}

/** 1 when the condition holds, else 0: the `count` of an optional resource. */
export function countIf(condition: boolean | IResolvable): number {
  return Token.asNumber(Fn.conditional(condition, 1, 0));
}

/**
 * A Terraform boolean expression where the bindings want a `boolean`. The value is a token;
 * CDKTF renders it as the expression.
 */
export function bool(expression: IResolvable): boolean {
  return expression as unknown as boolean;
}

// CDKTF's Op drops falsy operands ("" and 0 render as `undefined`), so emptiness is
// tested through length, against 1.

/** `length(value) < 1`: the string or list is empty. */
export function isEmpty(value: string | string[]): boolean {
  return bool(Op.lt(Fn.lengthOf(value), 1));
}

/** `length(value) >= 1`: the string or list is not empty. */
export function isNotEmpty(value: string | string[]): boolean {
  return bool(Op.gte(Fn.lengthOf(value), 1));
}
