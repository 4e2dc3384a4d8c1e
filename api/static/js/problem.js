// What a refused request says: the `detail` (or `title`) of its problem+json body (RFC 9457),
// for the pages' error lines; the HTTP status where the body is not a problem.

export async function problemText(response) {
  try {
    const problem = await response.json();
    return problem.detail || problem.title || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}
