// Runs storefront/checkout/static/checkout.js against stand-ins for the page, Stripe.js and
// fetch(), submits the form once by card, and prints what the shopper was shown (JSON).
// Usage: node checkout_js_harness.mjs <checkout.js> <reply kind> [<reply body>]
import { readFileSync } from "node:fs";
import vm from "node:vm";

const [scriptPath, replyKind, replyBody] = process.argv.slice(2);
let submitHandler = null;
let errorBox = null;
let formSubmitted = false;

const form = {
  dataset: {
    sandbox: "false",
    publishableKey: "pk_test_x",
    amount: "1999",
    currency: "usd",
    intentUrl: "/checkout/payment-intent",
  },
  payment_intent_id: { value: "" },
  validation_token: { value: "a".repeat(43) },
  addEventListener(type, handler) {
    if (type === "submit") submitHandler = handler;
  },
  querySelector() {
    return { value: "stripe" };
  },
  submit() {
    formSubmitted = true;
  },
};
const document = {
  getElementById(id) {
    if (id === "checkout-form") return form;
    if (id === "card-error") return errorBox;
    if (id === "payment-element")
      return {
        after(node) {
          errorBox = node;
        },
      };
    return null;
  },
  querySelector() {
    return { getAttribute: () => "csrf-token-value" };
  },
  createElement() {
    return { setAttribute() {}, textContent: "" };
  },
};
function Stripe() {
  return {
    elements: () => ({ create: () => ({ mount() {} }), submit: async () => ({}) }),
    confirmPayment: async () => ({}),
  };
}
async function fetch() {
  if (replyKind === "network-error") throw new TypeError("Failed to fetch");
  return {
    ok: replyKind === "ok",
    status: replyKind === "ok" ? 200 : 400,
    json: async () => JSON.parse(replyBody),
  };
}

vm.runInNewContext(readFileSync(scriptPath, "utf8"), { document, Stripe, fetch, JSON });
await submitHandler({ preventDefault() {} });
console.log(
  JSON.stringify({ shown: errorBox ? errorBox.textContent : null, submitted: formSubmitted }),
);
