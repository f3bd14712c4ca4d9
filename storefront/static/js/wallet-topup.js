// Wallet top-up by card: Stripe's Payment Element collects the card (PCI stays with Stripe) and
// confirms the PaymentIntent the server created; Stripe then returns the shopper to the "done"
// page, where the server asks Stripe whether the payment succeeded before crediting anything.
(function () {
  "use strict";
  var box = document.getElementById("topup-payment");
  if (!box || typeof Stripe === "undefined") {
    return;
  }
  var stripe = Stripe(box.dataset.publishableKey);
  var elements = stripe.elements({ clientSecret: box.dataset.clientSecret });
  elements.create("payment").mount("#payment-element");
  var form = document.getElementById("topup-pay-form");
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    var result = await stripe.confirmPayment({
      elements: elements,
      confirmParams: { return_url: box.dataset.returnUrl },
    });
    if (result.error) {
      var error = document.getElementById("card-error");
      error.textContent = result.error.message;
      error.hidden = false;
    }
  });
})();
