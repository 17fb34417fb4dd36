package api

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

// pageSize reads a listing's page size: ?pageSize= (or its alias ?limit=), 1 to 500, default 50.
func pageSize(c *gin.Context) (int, bool) {
	v := c.DefaultQuery("pageSize", c.DefaultQuery("limit", "50"))
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 500 {
		problem(c, http.StatusBadRequest, "pageSize: a whole number from 1 to 500")
		return 0, false
	}
	return n, true
}

func encodeCursor(name string, id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(id, 10) + ":" + name))
}

func decodeCursor(s string) (string, int64, error) {
	if s == "" {
		return "", 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", 0, err
	}
	idStr, name, ok := strings.Cut(string(b), ":")
	if !ok {
		return "", 0, errors.New("bad cursor")
	}
	id, err := strconv.ParseInt(idStr, 10, 64)
	return name, id, err
}

// trimPage cuts a listing read with limit+1 rows to limit and returns the cursor of the next page
// ("" on the last page): the extra row only tells that there is one.
func trimPage[T any](rows []T, limit int, cursor func(last T) string) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, cursor(rows[limit-1])
}

// pageMeta is the meta of a cursor-paged listing.
func pageMeta(next string) gin.H { return gin.H{"nextPage": next, "hasNextPage": next != ""} }
