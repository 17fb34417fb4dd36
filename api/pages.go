package api

import (
	"net/http"
	"strconv"

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

// pageMeta is the meta of a cursor-paged listing.
func pageMeta(next string) gin.H { return gin.H{"nextPage": next, "hasNextPage": next != ""} }
