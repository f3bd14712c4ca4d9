// Card payments with real Stripe keys: the Payment Element collects the card (PCI stays with
// Stripe), the server creates a manual-capture PaymentIntent for the total shown, Stripe.js
// confirms it, and the form is submitted with the PaymentIntent id for the server to check.
// Wallet payments submit the form as is. Sandbox mode never loads this file.
(function () {
  "use strict";
  var form = document.getElementById("checkout-form");
  if (!form || form.dataset.sandbox === "true" || typeof Stripe === "undefined") {
    return;
  }
  var stripe = Stripe(form.dataset.publishableKey);
  var elements = stripe.elements({
    mode: "payment",
    amount: parseInt(form.dataset.amount, 10),
    currency: form.dataset.currency,
    captureMethod: "manual",
  });
  elements.create("payment").mount("#payment-element");
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");

  function showError(message) {
    var box = document.getElementById("card-error");
    if (!box) {
      box = document.createElement("p");
      box.id = "card-error";
      box.className = "field-errors";
      box.setAttribute("role", "alert");
      document.getElementById("payment-element").after(box);
    }
    box.textContent = message;
  }

  // The server answers JSON, errors as {"error": {"status", "title", "message"}}; a reply
  // that is not JSON (a proxy's error page, the network down) still gets a readable message.
  async function requestIntent() {
    var fallback = "The card payment could not be prepared. Please try again.";
    var response;
    try {
      response = await fetch(form.dataset.intentUrl, {
        method: "POST",
        headers: {
          Accept: "application/json",
          "Content-Type": "application/json",
          "X-CSRFToken": csrf,
          "X-Requested-With": "fetch",
        },
        body: JSON.stringify({ validation_token: form.validation_token.value }),
      });
    } catch (networkError) {
      return { error: fallback };
    }
    var body = null;
    try {
      body = await response.json();
    } catch (notJson) {
      body = null;
    }
    if (!response.ok || !body || !body.client_secret) {
      var problem = body && body.error;
      var message = problem && typeof problem === "object" ? problem.message : problem;
      return { error: typeof message === "string" && message ? message : fallback };
    }
    return body;
  }

  form.addEventListener("submit", async function (event) {
    var method = form.querySelector('input[name="payment_method"]:checked');
    if (!method || method.value !== "stripe" || form.payment_intent_id.value) {
      return;
    }
    event.preventDefault();
    var submitted = await elements.submit();
    if (submitted.error) {
      showError(submitted.error.message);
      return;
    }
    var intent = await requestIntent();
    if (intent.error) {
      showError(intent.error);
      return;
    }
    var result = await stripe.confirmPayment({
      elements: elements,
      clientSecret: intent.client_secret,
      redirect: "if_required",
    });
    if (result.error) {
      showError(result.error.message);
      return;
    }
    form.payment_intent_id.value = intent.payment_intent_id;
    form.submit();
  });
})();
