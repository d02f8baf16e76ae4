/* A click selects the whole field ([data-select-on-click]), ready to copy. In a file, not
 * an onclick attribute: the Content-Security-Policy runs no inline script. */
document.addEventListener("click", (event) => {
  const field = event.target.closest("[data-select-on-click]");
  if (field) field.select();
});
