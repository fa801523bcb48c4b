/* The overview's daily spend chart: a bar per day, stacked by model, drawn with the
 * vendored Chart.js (static/vendor/README.md) from the JSON the page embeds in
 * #spend-chart-data: {days: ["YYYY-MM-DD", ...], series: [{label, values: [nano-USD]}]}.
 * Progressive: the same numbers are in the table beside it.
 * Amounts arrive as integer nano-dollars; they become floats here only to be drawn
 * and labelled, never to be added up for anything the user pays.
 */
(function () {
  "use strict";

  var canvas = document.getElementById("spend-chart");
  var source = document.getElementById("spend-chart-data");
  if (!canvas || !source || !window.Chart) return;
  var data = JSON.parse(source.textContent);

  var PALETTE = ["#2456d6", "#1d9a6c", "#e08a1e", "#9b4dca", "#d64545", "#1aa3b8"];
  var OTHER = "#a7b0bd";

  function usd(nano, places) {
    return "$" + (nano / 1e9).toFixed(places);
  }

  var datasets = data.series.map(function (series, i) {
    return {
      label: series.label,
      data: series.values,
      backgroundColor: series.label === "Other" ? OTHER : PALETTE[i % PALETTE.length],
      borderWidth: 0,
      stack: "spend",
    };
  });

  var chart = new window.Chart(canvas, {
    type: "bar",
    data: {
      labels: data.days.map(function (day) { return day.slice(5); }),
      datasets: datasets,
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { stacked: true, grid: { display: false } },
        y: {
          stacked: true,
          beginAtZero: true,
          ticks: { callback: function (value) { return usd(value, value && value < 1e7 ? 4 : 2); } },
        },
      },
      plugins: {
        legend: { position: "bottom", labels: { boxWidth: 12 } },
        tooltip: {
          callbacks: {
            title: function (items) { return data.days[items[0].dataIndex]; },
            label: function (item) { return item.dataset.label + ": " + usd(item.parsed.y, 4); },
            footer: function (items) {
              var total = items.reduce(function (sum, item) { return sum + item.parsed.y; }, 0);
              return "Total: " + usd(total, 4);
            },
          },
        },
      },
    },
  });
  canvas.dataset.chartReady = String(chart.data.datasets.length);
})();
