// Search-as-you-type for /search: progressive enhancement of a plain GET form.
// Without JavaScript the form submits normally; with it, typing or changing a filter asks
// /api/search for the re-rendered results and facets and swaps them in, keeping the URL in sync.
(function () {
  "use strict";
  var form = document.getElementById("search-form");
  if (!form || !window.fetch || !window.URLSearchParams) { return; }
  var results = document.getElementById("results");
  var facets = document.getElementById("facets");
  var apiUrl = "/api/search";
  var timer = null;
  var controller = null;
  var DELAY_MS = 200;
  var heading = document.getElementById("results-heading");
  var headerSearch = document.getElementById("site-search");
  var clearFilters = document.getElementById("clear-filters");
  var toolbarControls = document.getElementById("toolbar-controls");
  // The site's part of the tab title (" · OneCart"), kept when the query part changes.
  var titleEnd = document.title.lastIndexOf(" \u00b7 ");
  var titleSuffix = titleEnd >= 0 ? document.title.slice(titleEnd) : "";
  // Unicode's bidi formatting characters (storefront/text_direction.py's BIDI_CONTROLS).
  var BIDI_CONTROLS = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

  form.classList.add("is-enhanced");
  // On a phone the filters would push every result below the fold: start them collapsed.
  var panel = document.getElementById("filters-panel");
  if (panel && window.matchMedia && !window.matchMedia("(min-width: 800px)").matches) {
    panel.open = false;
  }

  function queryString() {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      if (value !== "") { params.append(key, value); }
    });
    return params;
  }

  // What the server renders around the results for this query: the heading, the tab title,
  // the header's search box, the "Clear all filters" link and the sort controls (search.html).
  function showQuery(body) {
    var query = body.query || "";
    if (heading) {
      // As search.html renders it: the query isolated in a <bdi>, so a right-to-left override
      // in it cannot reverse the closing quote.
      heading.textContent = query ? "Results for \u201c" : "All products";
      if (query) {
        var isolated = document.createElement("bdi");
        isolated.textContent = query;
        heading.appendChild(isolated);
        heading.appendChild(document.createTextNode("\u201d"));
      }
    }
    // A title holds no markup to isolate the query in: its bidi controls are dropped, as
    // storefront/text_direction.py does for the server's titles.
    var titleQuery = query.replace(BIDI_CONTROLS, "");
    document.title = (titleQuery ? titleQuery + " \u2014 " : "") + "Search" + titleSuffix;
    if (headerSearch && headerSearch !== document.activeElement) { headerSearch.value = query; }
    if (clearFilters) {
      if (body.clear_filters_url) {
        clearFilters.querySelector("a").setAttribute("href", body.clear_filters_url);
      }
      clearFilters.hidden = !body.clear_filters_url;
    }
    // Nothing found, nothing to sort: as search.html renders it.
    if (toolbarControls) { toolbarControls.hidden = !body.total_hits; }
  }

  function refresh() {
    var params = queryString();
    var pageUrl = form.getAttribute("action") + (params.toString() ? "?" + params.toString() : "");
    params.set("html", "1");
    if (controller) { controller.abort(); }
    controller = window.AbortController ? new AbortController() : null;
    results.setAttribute("aria-busy", "true");
    fetch(apiUrl + "?" + params.toString(), {
      headers: { "Accept": "application/json" },
      signal: controller ? controller.signal : undefined
    }).then(function (response) {
      if (!response.ok) { throw new Error("search failed: " + response.status); }
      return response.json();
    }).then(function (body) {
      var refocus = focusedFacet();
      results.innerHTML = body.results_html;
      facets.innerHTML = body.facets_html;
      showQuery(body);
      if (refocus) { refocus(); }
      window.history.replaceState(null, "", body.url || pageUrl);
      results.removeAttribute("aria-busy");
    }).catch(function (error) {
      if (error && error.name === "AbortError") { return; }
      results.removeAttribute("aria-busy");
      // Fall back to a normal page load, which shows the friendly error page if search is down.
      window.location.assign(pageUrl);
    });
  }

  // The facets are swapped in place: the element the shopper was on is found again in the new
  // ones, by id or, for the facets' checkboxes and radios (which have none), by name and value;
  // else a keyboard user was left on the page's body, back at the top of the tab order.
  function focusedFacet() {
    var active = document.activeElement;
    if (!active || !facets.contains(active)) { return null; }
    var id = active.id;
    var name = active.getAttribute("name");
    var value = active.getAttribute("value");
    return function () {
      var again = id ? document.getElementById(id) : null;
      if (!again && name) {
        var inputs = facets.querySelectorAll("input");
        for (var i = 0; i < inputs.length && !again; i++) {
          if (inputs[i].getAttribute("name") === name && inputs[i].getAttribute("value") === value) {
            again = inputs[i];
          }
        }
      }
      if (again && facets.contains(again)) { again.focus(); }
    };
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, DELAY_MS);
  }

  form.addEventListener("input", function (event) {
    if (event.target && event.target.name === "q") { schedule(); }
  });
  form.addEventListener("change", function (event) {
    if (event.target && event.target.name !== "q") { schedule(); }
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    window.clearTimeout(timer);
    refresh();
  });
})();
