// The header's menus (<details class="header-menu">) behave as menus: Escape closes the open
// one and gives focus back to its summary, a click or focus outside it closes it, and opening
// one closes the others. A bare <details> stays open over the page until its own summary is
// pressed again. Without this script the menus still open and close from their summaries.
(function () {
  "use strict";

  var menus = Array.prototype.slice.call(document.querySelectorAll("details.header-menu"));
  if (!menus.length) {
    return;
  }

  function closeAllBut(keep) {
    menus.forEach(function (menu) {
      if (menu !== keep && menu.open) {
        menu.open = false;
      }
    });
  }

  function closeOutside(target) {
    menus.forEach(function (menu) {
      if (menu.open && !menu.contains(target)) {
        menu.open = false;
      }
    });
  }

  menus.forEach(function (menu) {
    menu.addEventListener("toggle", function () {
      if (menu.open) {
        closeAllBut(menu);
      }
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") {
      return;
    }
    menus.forEach(function (menu) {
      if (!menu.open) {
        return;
      }
      var hadFocus = menu.contains(document.activeElement);
      menu.open = false;
      if (hadFocus) {
        menu.querySelector("summary").focus();
      }
    });
  });

  document.addEventListener("click", function (event) {
    closeOutside(event.target);
  });
  document.addEventListener("focusin", function (event) {
    closeOutside(event.target);
  });
})();
