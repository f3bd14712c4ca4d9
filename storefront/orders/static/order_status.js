// While parts of an order are being placed with their marketplaces, ask the order's JSON status
// every few seconds and update each part's status text and marketplace order number in place;
// what changed is said in the page's polite live region (#order-progress). When a part's state
// changed, the page's own sections that follow from it (each part's panel with its timeline and
// actions, the merged timeline, the payment summary: [data-live-part]) are replaced by those of
// a fresh copy of this page, so nothing on it contradicts the new state; an open panel stays
// open, and focus inside a replaced section moves to its heading. Stops once nothing is
// pending. Without this script the page's "Refresh" link does the same by reloading.
(function () {
  "use strict";

  var box = document.querySelector(".order-progress[data-status-url]");
  var region = document.getElementById("order-progress");
  if (!box || !region || !window.fetch) {
    return;
  }
  var url = box.getAttribute("data-status-url");
  var every = parseInt(box.getAttribute("data-poll-ms"), 10) || 4000;
  var shown = {};
  var live = box.querySelector(".order-live");
  var refreshLine = box.querySelector(".order-refresh");

  // Say what is true: with this script the page follows the parts by itself; the "Refresh"
  // line comes back only when an answer is lost.
  function updatesItself(yes) {
    if (live) {
      live.hidden = !yes;
    }
    if (refreshLine) {
      refreshLine.hidden = yes;
    }
  }
  updatesItself(true);

  function partElement(id) {
    return document.querySelector('.sub-order[data-sub-order-id="' + id + '"]');
  }

  document.querySelectorAll(".sub-order[data-sub-order-id]").forEach(function (element) {
    var badge = element.querySelector("[data-testid=sub-order-status]");
    shown[element.getAttribute("data-sub-order-id")] = badge ? badge.textContent.trim() : "";
  });

  function apply(status) {
    var changes = [];
    status.parts.forEach(function (part) {
      var element = partElement(part.id);
      if (!element) {
        return;
      }
      var badge = element.querySelector("[data-testid=sub-order-status]");
      if (badge && shown[part.id] !== part.state) {
        badge.textContent = part.state;
        badge.className = "status-badge status-" + part.state_key;
        changes.push(part.marketplace + ": " + part.state + ".");
      }
      shown[part.id] = part.state;
      element.setAttribute("data-state", part.state_key);
      var number = element.querySelector(".sub-order-number");
      if (number && part.order_number) {
        number.textContent = part.order_number;
      }
    });
    var overall = document.querySelector("[data-testid=order-status]");
    if (overall && status.status) {
      overall.textContent = status.status;
    }
    // The status link's page says when the order last changed (not said aloud: the changes are).
    var stamp = document.querySelector("[data-last-update]");
    if (stamp && status.last_update) {
      stamp.textContent = status.last_update;
    }
    if (!status.pending) {
      changes.push(box.getAttribute("data-done-message") || "");
      if (live) {
        live.hidden = true;
      }
      if (refreshLine) {
        refreshLine.hidden = true;
      }
    }
    if (changes.length) {
      region.textContent = changes.join(" ");
      refreshSections();
    }
  }

  function refreshSections() {
    if (!window.DOMParser) {
      return;
    }
    fetch(window.location.pathname, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live-part]").forEach(function (element) {
          var key = element.getAttribute("data-live-part");
          var replacement = fresh.querySelector('[data-live-part="' + key + '"]');
          if (!replacement) {
            return;
          }
          var hadFocus = element.contains(document.activeElement);
          var wasOpen = element.tagName === "DETAILS" ? element.open : null;
          element.innerHTML = replacement.innerHTML;
          Array.prototype.forEach.call(replacement.attributes, function (attribute) {
            if (attribute.name !== "open") {
              element.setAttribute(attribute.name, attribute.value);
            }
          });
          if (wasOpen !== null) {
            element.open = wasOpen;
          }
          if (hadFocus) {
            var heading = element.querySelector("summary, h2, h3") || element;
            if (!heading.hasAttribute("tabindex") && heading.tagName !== "SUMMARY") {
              heading.setAttribute("tabindex", "-1");
            }
            heading.focus();
          }
        });
      })
      .catch(function () {
        // The badges are already right; the "Refresh" link shows the rest.
        updatesItself(false);
      });
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (status) {
        if (status.pending) {
          updatesItself(true);
        }
        apply(status);
        if (status.pending) {
          window.setTimeout(poll, every);
        }
      })
      .catch(function () {
        // A lost answer (network, a restart): try again later; meanwhile the Refresh link.
        updatesItself(false);
        window.setTimeout(poll, every * 2);
      });
  }

  window.setTimeout(poll, every);
})();
